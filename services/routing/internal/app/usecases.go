package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	pstore "github.com/cairn-dev/cairn/pkg/store"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// The use cases of the cairn.routing.v1 API, as internal/server calls them
// with decoded and validated requests: each owns its transaction.

var _ rserver.App = (*Service)(nil)

// Now is the service clock's current time.
func (s *Service) Now() time.Time { return s.clk.Now() }

// Partitions is the number of routing log partitions.
func (s *Service) Partitions() uint32 { return s.parts }

// UpsertOwner stores an owner, then routes what waits for one.
func (s *Service) UpsertOwner(ws string, o *routingv1.Owner) error {
	return s.Update(ws, func(tx *store.Tx) error {
		if err := s.PutOwner(tx, o); err != nil {
			return err
		}
		_, err := s.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
}

// GetOwner returns one owner.
func (s *Service) GetOwner(ws, id string) (*routingv1.Owner, error) {
	var o *routingv1.Owner
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		o, err = tx.Owner(id)
		return err
	})
	return o, err
}

// ListOwners pages owners by id, of one team when team is set.
func (s *Service) ListOwners(ws string, team routingv1.Team, after []byte, size int) ([]*routingv1.Owner, []byte, bool, error) {
	var (
		items []*routingv1.Owner
		last  []byte
		more  bool
	)
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		items, last, more, err = tx.ListOwners(store.Page{After: after, Size: size}, team)
		return err
	})
	return items, last, more, err
}

// DeleteOwner removes an owner; its open assignments keep their owner id.
func (s *Service) DeleteOwner(ws, id string) error {
	return s.Update(ws, func(tx *store.Tx) error { return s.deleteOwner(tx, id) })
}

// UpsertPool stores a pool, then routes what waits for one.
func (s *Service) UpsertPool(ws string, p *routingv1.Pool) error {
	return s.Update(ws, func(tx *store.Tx) error {
		if err := tx.PutPool(p); err != nil {
			return err
		}
		_, err := s.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
}

// GetPool returns one pool.
func (s *Service) GetPool(ws, id string) (*routingv1.Pool, error) {
	var p *routingv1.Pool
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		p, err = tx.Pool(id)
		return err
	})
	return p, err
}

// ListPools pages pools by id.
func (s *Service) ListPools(ws string, after []byte, size int) ([]*routingv1.Pool, []byte, bool, error) {
	var (
		items []*routingv1.Pool
		last  []byte
		more  bool
	)
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		items, last, more, err = tx.ListPools(store.Page{After: after, Size: size})
		return err
	})
	return items, last, more, err
}

// DeletePool removes a pool.
func (s *Service) DeletePool(ws, id string) error {
	return s.Update(ws, func(tx *store.Tx) error { return tx.DeletePool(id) })
}

// ApplyConfig stores cfg (compiled and validated by the caller) as the
// workspace's next config version, stamped now, and returns it with its
// version. A config whose rules or fallback name a pool the workspace does
// not have is refused.
//
// A config equal to the active one but for its version and time is not
// stored again: ApplyConfig returns the active config and unchanged.
func (s *Service) ApplyConfig(ws string, cfg *routingv1.Config) (_ *routingv1.Config, unchanged bool, err error) {
	cfg.CreatedAt = timestamppb.New(s.clk.Now())
	err = s.Update(ws, func(tx *store.Tx) error {
		if err := checkConfigPools(tx, cfg); err != nil {
			return err
		}
		prev, err := tx.Config()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && pstore.SameContent(prev, cfg) {
			cfg, unchanged = prev, true
			return nil
		}
		if err := tx.PutConfig(cfg); err != nil {
			return err
		}
		_, err = s.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
	return cfg, unchanged, err
}

// checkConfigPools refuses a config whose rules or fallback name a pool the
// workspace does not have: every handoff reaching that rule would otherwise
// end unassigned. Pools are applied before the config that uses them
// (cairn apply does so).
func checkConfigPools(tx *store.Tx, cfg *routingv1.Config) error {
	check := func(path, id string) error {
		if id == "" {
			return nil
		}
		if _, err := tx.Pool(id); errors.Is(err, store.ErrNotFound) {
			return apierr.Field(path, "no pool %q in this workspace", id)
		} else if err != nil {
			return err
		}
		return nil
	}
	if err := check("fallback_pool_id", cfg.GetFallbackPoolId()); err != nil {
		return err
	}
	for i, r := range cfg.GetRules() {
		if r.GetAction() != routingv1.ActionKind_ACTION_KIND_POOL {
			continue
		}
		if err := check(fmt.Sprintf("rules[%d].pool_id", i), r.GetPoolId()); err != nil {
			return err
		}
	}
	return nil
}

// GetConfig returns the active config, or an error matching
// apierr.ErrNotFound.
func (s *Service) GetConfig(ws string) (*routingv1.Config, error) {
	var cfg *routingv1.Config
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		cfg, err = tx.Config()
		return err
	})
	return cfg, err
}

// apiRequestID namespaces client idempotency keys apart from the keys the
// consumers derive from upstream records ("ingestion:<message id>", ...).
func apiRequestID(id string) string {
	if id == "" {
		return ""
	}
	return "api:" + id
}

// Qualify routes an MQL, PQL or SQL; requestID, when set, makes the call
// idempotent.
func (s *Service) Qualify(ctx context.Context, ws string, t routingv1.HandoffType, lead *routingv1.Lead, requestID string) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.RouteTx(tx, Route{Type: t, Lead: lead, RequestID: apiRequestID(requestID)})
	})
}

// Handoff routes a post-sale or manual handoff of an account, to ownerID
// when set.
func (s *Service) Handoff(ctx context.Context, ws string, t routingv1.HandoffType, accountID, ownerID, reason, requestID string) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.RouteTx(tx, Route{
			Type: t, AccountID: accountID, OwnerID: ownerID, Reason: reason, RequestID: apiRequestID(requestID),
			Lead: &routingv1.Lead{AccountId: accountID},
		})
	})
}

// GetAssignment returns one assignment.
func (s *Service) GetAssignment(ws, id string) (*routingv1.Assignment, error) {
	var a *routingv1.Assignment
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		a, err = tx.Assignment(id)
		return err
	})
	return a, err
}

// ListAssignments pages the assignments matching the request's owner,
// state, type and account.
func (s *Service) ListAssignments(ws string, req *routingv1.ListAssignmentsRequest, after []byte, size int) ([]*routingv1.Assignment, []byte, bool, error) {
	var (
		items []*routingv1.Assignment
		last  []byte
		more  bool
	)
	f := store.Filter{OwnerID: req.GetOwnerId(), State: req.GetState(), Type: req.GetType(), AccountID: req.GetAccountId()}
	err := s.View(ws, func(tx *store.Tx) error {
		var err error
		if req.GetOpenQueue() {
			items, last, more, err = openQueue(tx, f, store.Page{After: after, Size: size})
			return err
		}
		items, last, more, err = tx.ListAssignments(f, store.Page{After: after, Size: size})
		return err
	})
	return items, last, more, err
}

// RecordTouch records a touch at at that closes or advances an SLA.
func (s *Service) RecordTouch(ctx context.Context, ws, id, touch string, at time.Time) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.TouchTx(tx, id, touch, at)
	})
}

// PauseSla pauses an assignment's SLA clock.
func (s *Service) PauseSla(ctx context.Context, ws, id, reason string) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.PauseTx(tx, id, reason)
	})
}

// ResumeSla resumes a paused SLA clock.
func (s *Service) ResumeSla(ctx context.Context, ws, id string) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.ResumeTx(tx, id)
	})
}

// Reassign moves an open assignment to ownerID by hand.
func (s *Service) Reassign(ctx context.Context, ws, id, ownerID, reason string) (*routingv1.Assignment, error) {
	return commitValue(ctx, s, ws, func(tx *store.Tx) (*routingv1.Assignment, error) {
		return s.ReassignTx(tx, id, ownerID, reason)
	})
}

// Report returns speed-to-lead (created to first touch) and SLA attainment
// (met on time / (met on time + met late + breached untouched)) by type,
// team and owner, for assignments created
// in [from, to) (a zero bound is open), ordered type, team, owner and by
// key.
func (s *Service) Report(ws string, from, to time.Time) ([]*routingv1.Attainment, error) {
	type acc struct {
		row    *routingv1.Attainment
		speeds []time.Duration
	}
	groups := map[[2]string]*acc{}
	// An assignment reassigned on breach counts as breached for its type
	// and for each previous owner (and their team); its current owner is
	// judged by the fresh clock it got.
	add := func(by, key string, a *routingv1.Assignment, previous bool) {
		g := groups[[2]string{by, key}]
		if g == nil {
			g = &acc{row: &routingv1.Attainment{GroupBy: by, Key: key}}
			groups[[2]string{by, key}] = g
		}
		g.row.Assignments++
		if previous {
			g.row.BreachedUntouched++
			return
		}
		switch st := a.GetSla(); {
		case st.GetMetAt() != nil:
			g.row.MetOnTime++
		case st.GetBreached() && st.GetMetLate():
			g.row.MetLate++
		case st.GetBreached():
			g.row.BreachedUntouched++
		}
		if by == "type" && breachedPrevious(a) > 0 && !a.GetSla().GetBreached() {
			// An earlier clock breached untouched and was handed on; the
			// type counts that breach once.
			g.row.BreachedUntouched++
		}
		if a.GetFirstTouchAt() != nil {
			g.speeds = append(g.speeds, a.GetFirstTouchAt().AsTime().Sub(a.GetCreatedAt().AsTime()))
		}
	}
	err := s.View(ws, func(tx *store.Tx) error {
		teams := map[string]string{}
		return tx.ForEachAssignment(func(a *routingv1.Assignment) error {
			c := a.GetCreatedAt().AsTime()
			if (!from.IsZero() && c.Before(from)) || (!to.IsZero() && !c.Before(to)) || a.GetOwnerId() == "" {
				return nil
			}
			teamOf := func(owner string) string {
				team, ok := teams[owner]
				if !ok {
					if o, err := tx.Owner(owner); err == nil {
						team = strings.ToLower(strings.TrimPrefix(o.GetTeam().String(), "TEAM_"))
					}
					teams[owner] = team
				}
				return team
			}
			add("type", rules.TypeName(a.GetType()), a, false)
			add("team", teamOf(a.GetOwnerId()), a, false)
			add("owner", a.GetOwnerId(), a, false)
			unbreached := unbreachedHandOns(a)
			for _, prev := range a.GetPreviousOwnerIds() {
				if unbreached[prev] > 0 {
					// Handed on by hand before their clock breached: not
					// judged on this assignment.
					unbreached[prev]--
					continue
				}
				add("team", teamOf(prev), a, true)
				add("owner", prev, a, true)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	rows := make([]*routingv1.Attainment, 0, len(groups))
	for _, g := range groups {
		g.row.Met = g.row.MetOnTime
		g.row.Breached = g.row.MetLate + g.row.BreachedUntouched
		if done := g.row.Met + g.row.Breached; done > 0 {
			g.row.Attainment = float64(g.row.Met) / float64(done)
		}
		if len(g.speeds) > 0 {
			slices.Sort(g.speeds)
			g.row.MedianSpeedToLead = durationpb.New(percentile(g.speeds, 50))
			g.row.P90SpeedToLead = durationpb.New(percentile(g.speeds, 90))
		}
		rows = append(rows, g.row)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.GetGroupBy() != b.GetGroupBy() {
			return a.GetGroupBy() > b.GetGroupBy() // type, team, owner
		}
		return a.GetKey() < b.GetKey()
	})
	return rows, nil
}

// unbreachedHandOns counts, per owner, the reassignments by hand away from
// them before their clock breached.
func unbreachedHandOns(a *routingv1.Assignment) map[string]int {
	var m map[string]int
	for _, r := range a.GetReassignments() {
		if r.GetBreached() {
			continue
		}
		if m == nil {
			m = map[string]int{}
		}
		m[r.GetFromOwnerId()]++
	}
	return m
}

// breachedPrevious is the number of previous owners whose clock breached.
func breachedPrevious(a *routingv1.Assignment) int {
	n := len(a.GetPreviousOwnerIds())
	for _, r := range a.GetReassignments() {
		if !r.GetBreached() {
			n--
		}
	}
	return max(n, 0)
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank-1, 0)]
}

// OwnerLoad pages owners with their open and breached counts.
func (s *Service) OwnerLoad(ws string, after []byte, size int) ([]*routingv1.OwnerLoad, []byte, bool, error) {
	var (
		out  []*routingv1.OwnerLoad
		last []byte
		more bool
	)
	err := s.View(ws, func(tx *store.Tx) error {
		owners, l, m, err := tx.ListOwners(store.Page{After: after, Size: size}, routingv1.Team_TEAM_UNSPECIFIED)
		for _, o := range owners {
			open, breached := tx.Load(o.GetOwnerId())
			out = append(out, &routingv1.OwnerLoad{
				OwnerId: o.GetOwnerId(), Name: o.GetName(), Team: o.GetTeam(), Open: int32(open), Capacity: o.GetCapacity(), Breached: int32(breached),
			})
		}
		last, more = l, m
		return err
	})
	return out, last, more, err
}
