// Package server implements cairn.ingestion.v1.IngestionService over gRPC:
// it validates batches, has the app admit them against its in-flight byte
// budget, hands valid events to the app and reports an honest result for
// every event. Errors are returned as they are; pkg/server maps them to a
// gRPC status once (pkg/apierr).
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store/wire"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
)

// Policy is the minimum role of every method (pkg/methods, the one table
// of each method's role, REST route and gateway routing).
func Policy() auth.Policy { return methods.Policy(methods.Ingestion) }

// App is the ingestion application the server calls (internal/app's App):
// the use cases behind the API, with validated input. Their errors are
// pkg/apierr errors, the log's (stream.ErrCompacted, stream.ErrBeyondHead)
// or unexpected ones.
type App interface {
	// Admit charges a batch of size bytes sent with the API key key
	// against the in-flight budget (waiting a short while for room), or
	// refuses it with ResourceExhausted and a retry delay; every admitted
	// batch's ticket is released once processed.
	Admit(ctx context.Context, key string, size int) (*admit.Ticket, error)
	// Inflight is the bytes of the batches admitted and not yet released.
	Inflight() int64
	// Ingest deduplicates, attributes and durably logs validated events
	// of ws, and returns where each was logged, nil for a duplicate.
	Ingest(ctx context.Context, ws string, events []*ingestionv1.Event) ([]*commonv1.LogPosition, error)
	// Timeline returns a page of an account's events, newest first, and
	// the key after which the next page starts (nil: no more).
	Timeline(ctx context.Context, q store.TimelineQuery) ([]*ingestionv1.Event, []byte, error)
	// DeleteSubject forgets a user or an account and returns the number
	// of events deleted and the tombstone's position.
	DeleteSubject(ctx context.Context, ws, userID, accountID string) (int64, *commonv1.LogPosition, error)
	// Partitions is the number of partitions of the event log.
	Partitions() uint32
	// SubscribeEncoded serves a partition of the event log from an offset
	// until ctx ends or send fails, each send given a SubscribeResponse in
	// wire form.
	SubscribeEncoded(ctx context.Context, p uint32, from uint64, send func(msg []byte) error) error
	// LogInfo describes the event log.
	LogInfo() *ingestionv1.GetLogInfoResponse
}

// Config configures the server.
type Config struct {
	// Limits bound events and batches.
	Limits validate.Limits
	// StreamWindow bounds the batches of one IngestStream processed
	// concurrently, so that one stream can fill a group commit (default 16).
	StreamWindow int
	// Clock is the arrival time source.
	Clock clock.Clock
	// Registerer receives the metrics; nil skips registration.
	Registerer prometheus.Registerer
	// Logger receives the internal errors behind IngestStream's batch
	// errors.
	Logger *slog.Logger
	// Workspace, when set, refuses a batch of IngestStream for a workspace
	// this replica does not own (pkg/server Config.CheckWorkspace); unary
	// calls are checked by pkg/server's interceptor before they get here.
	Workspace func(workspace string) error
}

// Server is the IngestionService implementation.
type Server struct {
	ingestionv1.UnimplementedIngestionServiceServer

	app App
	cfg Config
	m   metrics
}

type metrics struct {
	events   *prometheus.CounterVec
	rejects  *prometheus.CounterVec
	batch    prometheus.Histogram
	inflight prometheus.GaugeFunc
	// accepted, duplicates and rejected are events' children, resolved once
	// rather than by label for every batch.
	accepted, duplicates, rejected prometheus.Counter
}

// New returns a server over a and registers its metrics.
func New(a App, cfg Config) (*Server, error) {
	if cfg.StreamWindow <= 0 {
		cfg.StreamWindow = 16
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{app: a, cfg: cfg}
	s.m = metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_ingest_events_total", Help: "Events received, by outcome (accepted, duplicate, rejected).",
		}, []string{"status"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_ingest_rejects_total", Help: "Rejected events by the top-level field at fault (size for whole-event limits).",
		}, []string{"reason"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_ingest_batch_seconds", Help: "Time to validate and durably commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_ingest_inflight_bytes", Help: "Bytes of batches being processed.",
		}, func() float64 { return float64(a.Inflight()) }),
	}
	s.m.accepted = s.m.events.WithLabelValues("accepted")
	s.m.duplicates = s.m.events.WithLabelValues("duplicate")
	s.m.rejected = s.m.events.WithLabelValues("rejected")
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.m.events, s.m.rejects, s.m.batch, s.m.inflight} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ingestion metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Ingest implements IngestionService.Ingest.
func (s *Server) Ingest(ctx context.Context, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	return s.ingest(ctx, ws, req)
}

func (s *Server) ingest(ctx context.Context, ws string, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	start := time.Now()
	// Sizing walks every event, so the event sizes validation needs come
	// out of the same walk; a stack array holds them for common batches.
	var sizesBuf [128]int
	size, sizes := wire.RequestSize(req, sizesBuf[:0])
	if ferr := validate.Batch(len(req.GetEvents()), size, s.cfg.Limits); ferr != nil {
		return nil, apierr.Field(ferr.Field, "%s", ferr.Reason)
	}
	ticket, err := s.app.Admit(ctx, admit.KeyOf(ctx), size)
	if err != nil {
		return nil, err
	}
	defer ticket.Release()

	now := s.cfg.Clock.Now()
	n := len(req.GetEvents())
	resp := &ingestionv1.IngestResponse{Results: make([]*ingestionv1.EventResult, n)}
	// One allocation for all results instead of one per event.
	results := make([]ingestionv1.EventResult, n)
	valid := make([]*ingestionv1.Event, 0, n)
	index := make([]int, 0, n)
	for i, ev := range req.GetEvents() {
		r := &results[i]
		r.Index, r.MessageId = int32(i), ev.GetMessageId()
		resp.Results[i] = r
		if ev == nil {
			ev = &ingestionv1.Event{}
		}
		var ferr *validate.FieldError
		if ev.GetWorkspace() != "" && ev.GetWorkspace() != ws {
			ferr = &validate.FieldError{Field: "workspace", Reason: "must be empty or the request's workspace"}
		} else {
			ferr = validate.EventOfSize(ev, sizes[i], s.cfg.Limits, now)
		}
		if ferr != nil {
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_REJECTED
			r.Field = "events[" + strconv.Itoa(i) + "]"
			if ferr.Field != "" {
				r.Field += "." + ferr.Field
			}
			r.Reason = ferr.Reason
			s.m.rejects.WithLabelValues(rejectReason(ferr.Field)).Inc()
			resp.Rejected++
			continue
		}
		if ev.GetMessageId() == "" {
			ev.MessageId = newMessageID()
			r.MessageId = ev.GetMessageId()
		}
		valid = append(valid, ev)
		index = append(index, i)
	}
	if len(valid) > 0 {
		positions, err := s.app.Ingest(ctx, ws, valid)
		if err != nil {
			return nil, err
		}
		for j, pos := range positions {
			r := resp.Results[index[j]]
			r.Flags = valid[j].GetFlags()
			if pos == nil {
				r.Status = ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE
				resp.Duplicates++
				continue
			}
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED
			r.Position = pos
			resp.Accepted++
		}
	}
	s.m.accepted.Add(float64(resp.Accepted))
	s.m.duplicates.Add(float64(resp.Duplicates))
	s.m.rejected.Add(float64(resp.Rejected))
	s.m.batch.Observe(time.Since(start).Seconds())
	return resp, nil
}

// rejectReason is the bounded metric label for a rejected field: its
// top-level proto field, or "size" for whole-event limits.
func rejectReason(field string) string {
	if field == "" {
		return "size"
	}
	if i := strings.IndexAny(field, ".["); i >= 0 {
		return field[:i]
	}
	return field
}

func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return "cairn-" + hex.EncodeToString(b[:])
}

// IngestStream implements IngestionService.IngestStream. Up to StreamWindow
// batches of one stream are committed concurrently (so a single stream can
// fill a group commit); responses are sent in request order.
func (s *Server) IngestStream(srv grpc.BidiStreamingServer[ingestionv1.IngestStreamRequest, ingestionv1.IngestStreamResponse]) error {
	ctx, cancel := context.WithCancel(srv.Context())
	defer cancel()
	type pending struct {
		seq  uint64
		done chan struct{}
		resp *ingestionv1.IngestResponse
		err  error
	}
	queue := make(chan *pending, s.cfg.StreamWindow)
	recvErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			req, err := srv.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			p := &pending{seq: req.GetSequence(), done: make(chan struct{})}
			select {
			case queue <- p:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
			go func() {
				defer close(p.done)
				batch := req.GetBatch()
				ws, err := auth.Workspace(ctx, batch.GetWorkspace())
				if err != nil {
					p.err = err
					return
				}
				if s.cfg.Workspace != nil {
					if p.err = s.cfg.Workspace(ws); p.err != nil {
						return
					}
				}
				p.resp, p.err = s.ingest(ctx, ws, batch)
			}()
		}
	}()
	for p := range queue {
		<-p.done
		// A refused batch is answered with its error and the stream goes
		// on: one oversized or throttled batch must not cost the caller the
		// results of the others in flight. Only the stream's own end (the
		// caller went away) stops it.
		if p.err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		resp := &ingestionv1.IngestStreamResponse{Sequence: p.seq, Result: p.resp}
		if p.err != nil {
			resp.Result = nil
			resp.Error = batchError(apierr.Status(s.cfg.Logger, ingestStreamMethod, p.err))
		}
		if err := srv.Send(resp); err != nil {
			return err
		}
	}
	if err := <-recvErr; !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ingestStreamMethod names IngestStream in the logs of its batches' errors.
const ingestStreamMethod = "/cairn.ingestion.v1.IngestionService/IngestStream"

// batchError carries a status error's code, message and retry delay into an
// IngestStreamResponse.
func batchError(err error) *ingestionv1.BatchError {
	st := status.Convert(err)
	be := &ingestionv1.BatchError{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			be.RetryDelay = ri.GetRetryDelay()
		}
	}
	return be
}

// Subscribe implements IngestionService.Subscribe.
func (s *Server) Subscribe(req *ingestionv1.SubscribeRequest, srv grpc.ServerStreamingServer[ingestionv1.SubscribeResponse]) error {
	if n := s.app.Partitions(); req.GetPartition() >= n {
		return apierr.Field("partition", "%d is out of range, the log has %d partitions", req.GetPartition(), n)
	}
	// The records go out as the log stores them (pkgserver.Encoded): the
	// same bytes a SubscribeResponse of the decoded records encodes to,
	// without decoding and re-encoding every event for every consumer.
	err := s.app.SubscribeEncoded(srv.Context(), req.GetPartition(), req.GetFromOffset(), func(msg []byte) error {
		return srv.SendMsg(pkgserver.Encoded(msg))
	})
	if srv.Context().Err() != nil {
		return nil
	}
	// A cursor behind retention or past the head is OutOfRange (apierr).
	return err
}

// ListAccountEvents implements IngestionService.ListAccountEvents.
func (s *Server) ListAccountEvents(ctx context.Context, req *ingestionv1.ListAccountEventsRequest) (*ingestionv1.ListAccountEventsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if req.GetAccountId() == "" {
		return nil, apierr.Field("account_id", "required")
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	q := store.TimelineQuery{Workspace: ws, Account: req.GetAccountId(), Name: req.GetName(), Source: req.GetSource(), Limit: size, After: after}
	if w := req.GetWindow(); w != nil {
		if w.GetStart() != nil {
			if w.GetStart().CheckValid() != nil {
				return nil, apierr.Field("window.start", "invalid timestamp")
			}
			q.Start = w.GetStart().AsTime()
		}
		if w.GetEnd() != nil {
			if w.GetEnd().CheckValid() != nil {
				return nil, apierr.Field("window.end", "invalid timestamp")
			}
			q.End = w.GetEnd().AsTime()
		}
		if !q.Start.IsZero() && !q.End.IsZero() && !q.End.After(q.Start) {
			return nil, apierr.Field("window.end", "must be after window.start")
		}
	}
	events, next, err := s.app.Timeline(ctx, q)
	if err != nil {
		return nil, err
	}
	return &ingestionv1.ListAccountEventsResponse{Events: events, Page: page.Response(next, next != nil, -1)}, nil
}

// DeleteSubject implements IngestionService.DeleteSubject.
func (s *Server) DeleteSubject(ctx context.Context, req *ingestionv1.DeleteSubjectRequest) (*ingestionv1.DeleteSubjectResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if (req.GetUserId() == "") == (req.GetAccountId() == "") {
		return nil, apierr.Field("user_id", "exactly one of user_id and account_id is required")
	}
	n, tombstone, err := s.app.DeleteSubject(ctx, ws, req.GetUserId(), req.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &ingestionv1.DeleteSubjectResponse{EventsDeleted: n, Tombstone: tombstone}, nil
}

// GetLogInfo implements IngestionService.GetLogInfo.
func (s *Server) GetLogInfo(ctx context.Context, req *ingestionv1.GetLogInfoRequest) (*ingestionv1.GetLogInfoResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	return s.app.LogInfo(), nil
}
