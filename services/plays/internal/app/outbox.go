package app

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// Record is the delivery engine's Recorder: it makes each outcome
// durable (delivered, retrying with its next attempt, or dead) in one
// group commit, before the engine moves on to the account's next message.
func (s *Service) Record(ctx context.Context, outs []deliver.Outcome) error {
	return s.db.Commit(ctx, func(tx *pstore.Tx) error {
		for _, o := range outs {
			ws, _, ok := strings.Cut(o.Message.Destination, "/")
			if !ok {
				continue
			}
			t := store.In(tx, ws)
			d, err := t.Delivery(o.Message.ID)
			if err != nil {
				return err
			}
			if d == nil {
				continue // forgotten meanwhile (right to be forgotten)
			}
			d.Attempts = int32(o.Message.Attempts)
			d.LastStatus = int32(o.Status)
			d.LastError = o.Message.LastError
			d.LastLatency = durationpb.New(o.Latency)
			d.LastAttemptAt = timestamppb.New(o.At)
			d.NextAttemptAt = nil
			switch o.State {
			case deliver.Delivered:
				d.State, d.LastError = playsv1.DeliveryState_DELIVERY_STATE_DELIVERED, ""
			case deliver.Dead:
				d.State = playsv1.DeliveryState_DELIVERY_STATE_DEAD
			default:
				d.State = playsv1.DeliveryState_DELIVERY_STATE_PENDING
				if !o.Message.NextAt.IsZero() {
					d.NextAttemptAt = timestamppb.New(o.Message.NextAt)
				}
			}
			if err := t.PutDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// activeWorkspaces lists every workspace with an active plays version.
func activeWorkspaces(tx *pstore.Tx) ([]string, error) {
	return store.Versions.Workspaces(tx, store.Slot)
}

// syncDestinations gives the engine every workspace's active destinations.
func (s *Service) syncDestinations() error {
	var all []deliver.Destination
	err := s.db.View(func(tx *pstore.Tx) error {
		wss, err := activeWorkspaces(tx)
		if err != nil {
			return err
		}
		for _, ws := range wss {
			set, _, err := s.activeSet(store.In(tx, ws))
			if err != nil {
				s.logger.Error("plays: destinations not loaded", "workspace", ws, "err", err)
				continue
			}
			if set == nil {
				continue
			}
			for _, d := range set.Destinations() {
				kind := deliver.Webhook
				if d.Type == "slack" {
					kind = deliver.Slack
				}
				all = append(all, deliver.Destination{
					ID: engineDest(ws, d.ID), Kind: kind, URL: d.URL, Secret: d.Secret, Concurrency: d.Concurrency,
				})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.engine.SetDestinations(all)
	return nil
}

// Resume loads the destinations and queues every pending delivery of the
// outbox: after a restart the engine carries on where it stopped, with
// the same webhook-ids.
func (s *Service) Resume() (int, error) {
	if err := s.failInterrupted(); err != nil {
		return 0, fmt.Errorf("replays cut short: %w", err)
	}
	if err := s.syncDestinations(); err != nil {
		return 0, err
	}
	var msgs []deliver.Message
	err := s.db.View(func(tx *pstore.Tx) error {
		return store.Pending(tx, func(ws string, d *playsv1.Delivery) error {
			msgs = append(msgs, toMessage(ws, seqOf(d.GetDeliveryId()), d))
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("load the outbox: %w", err)
	}
	// Per-account order follows Seq.
	slices.SortFunc(msgs, bySeq)
	s.engine.Enqueue(msgs...)
	return len(msgs), nil
}

// bySeq orders messages by their outbox sequence: per-account order.
func bySeq(a, b deliver.Message) int { return cmp.Compare(a.Seq, b.Seq) }

// seqOf is the sequence number at the end of a delivery id (0 when there
// is none).
func seqOf(id string) uint64 {
	n, err := strconv.ParseUint(id[strings.LastIndexByte(id, '_')+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// Redeliver queues dead deliveries again with their original ids: the
// ones named, or every dead delivery of destination.
func (s *Service) Redeliver(ctx context.Context, ws string, ids []string, destination string) (int, error) {
	msgs, err := pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) ([]deliver.Message, error) {
		t := store.In(tx, ws)
		var ds []*playsv1.Delivery
		if len(ids) > 0 {
			for _, id := range ids {
				d, err := t.Delivery(id)
				if err != nil {
					return nil, err
				}
				if d == nil {
					return nil, apierr.NotFound("delivery %q not found", id)
				}
				if d.GetState() != playsv1.DeliveryState_DELIVERY_STATE_DEAD {
					return nil, apierr.FailedPrecondition("delivery %q is %s, not dead", id, strings.ToLower(strings.TrimPrefix(d.GetState().String(), "DELIVERY_STATE_")))
				}
				ds = append(ds, d)
			}
		} else if err := t.DeliveryLog(nil, func(_ []byte, d *playsv1.Delivery) (bool, error) {
			if d.GetDestinationId() == destination && d.GetState() == playsv1.DeliveryState_DELIVERY_STATE_DEAD {
				ds = append(ds, d)
			}
			return true, nil
		}); err != nil {
			return nil, err
		}
		now := timestamppb.New(s.clk.Now())
		out := make([]deliver.Message, 0, len(ds))
		for _, d := range ds {
			// A fresh horizon and attempt count; the id stays, so a
			// receiver that did get an earlier attempt can tell.
			d.State, d.Attempts, d.CreatedAt, d.NextAttemptAt = playsv1.DeliveryState_DELIVERY_STATE_PENDING, 0, now, nil
			if err := t.PutDelivery(d); err != nil {
				return nil, err
			}
			out = append(out, toMessage(ws, seqOf(d.GetDeliveryId()), d))
		}
		return out, nil
	})
	if err != nil {
		return 0, err
	}
	slices.SortFunc(msgs, bySeq)
	s.engine.Enqueue(msgs...)
	return len(msgs), nil
}

// ListDestinations reports the workspace's destinations with the engine's
// figures and the outbox's pending and dead counts.
func (s *Service) ListDestinations(ws string) ([]*playsv1.DestinationStatus, error) {
	var out []*playsv1.DestinationStatus
	err := s.db.View(func(tx *pstore.Tx) error {
		t := store.In(tx, ws)
		set, _, err := s.activeSet(t)
		if err != nil || set == nil {
			return err
		}
		pending, dead := map[string]int64{}, map[string]int64{}
		if err := t.DeliveryLog(nil, func(_ []byte, d *playsv1.Delivery) (bool, error) {
			switch d.GetState() {
			case playsv1.DeliveryState_DELIVERY_STATE_PENDING:
				pending[d.GetDestinationId()]++
			case playsv1.DeliveryState_DELIVERY_STATE_DEAD:
				dead[d.GetDestinationId()]++
			}
			return true, nil
		}); err != nil {
			return err
		}
		stats := map[string]deliver.DestinationStats{}
		for _, st := range s.engine.Stats() {
			stats[st.Destination] = st
		}
		for _, d := range set.Destinations() {
			st := stats[engineDest(ws, d.ID)]
			ds := &playsv1.DestinationStatus{
				Destination: &playsv1.Destination{DestinationId: d.ID, Type: d.Type, Url: d.URL, Signed: d.Secret != "", Concurrency: int32(d.Concurrency)},
				Pending:     pending[d.ID], InFlight: int64(st.InFlight), Delivered: int64(st.Delivered),
				FailedAttempts: int64(st.FailedAttempts), Dead: dead[d.ID], Breaker: st.Breaker, LastError: st.LastError,
				LastStatus: int32(st.LastStatus),
			}
			if st.P50 > 0 {
				ds.LatencyP50, ds.LatencyP99 = durationpb.New(st.P50), durationpb.New(st.P99)
			}
			out = append(out, ds)
		}
		return nil
	})
	return out, err
}
