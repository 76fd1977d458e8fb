// Package server implements cairn.ingestion.v1.IngestionService: it validates
// batches, charges them against an in-flight byte budget, hands valid events
// to the store and reports an honest result for every event.
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
	"sync/atomic"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/page"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/ingestion/internal/store"
	"github.com/cairn-dev/cairn/services/ingestion/internal/validate"
	"github.com/cairn-dev/cairn/services/ingestion/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Policy is the minimum role of every ingestion RPC, for auth interceptors.
func Policy() auth.Policy {
	const svc = "/cairn.ingestion.v1.IngestionService/"
	return auth.Policy{
		svc + "Ingest":            auth.RoleWrite,
		svc + "IngestStream":      auth.RoleWrite,
		svc + "ListAccountEvents": auth.RoleRead,
		svc + "GetLogInfo":        auth.RoleRead,
		svc + "DeleteSubject":     auth.RoleAdmin,
		svc + "Subscribe":         auth.RoleService,
	}
}

// Config configures the server.
type Config struct {
	// Limits bound events and batches.
	Limits validate.Limits
	// MaxInflightBytes bounds the protobuf bytes of batches being processed
	// at once; beyond it callers get ResourceExhausted with a retry delay
	// instead of queueing without limit (default 64 MiB).
	MaxInflightBytes int64
	// RetryDelay is the delay suggested to callers that hit the budget
	// (default 200ms).
	RetryDelay time.Duration
	// StreamWindow bounds the batches of one IngestStream processed
	// concurrently, so that one stream can fill a group commit (default 16).
	StreamWindow int
	// Clock is the arrival time source.
	Clock clock.Clock
	// Registerer receives the metrics; nil skips registration.
	Registerer prometheus.Registerer
	// Logger receives internal errors.
	Logger *slog.Logger
	// Workspace, when set, refuses a batch of IngestStream for a workspace
	// this replica does not own (pkg/server Config.CheckWorkspace); unary
	// calls are checked by pkg/server's interceptor before they get here.
	Workspace func(workspace string) error
}

// Server is the IngestionService implementation.
type Server struct {
	ingestionv1.UnimplementedIngestionServiceServer

	st       *store.Store
	cfg      Config
	inflight atomic.Int64
	m        metrics
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

// New returns a server over st and registers its metrics.
func New(st *store.Store, cfg Config) (*Server, error) {
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = 64 << 20
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 200 * time.Millisecond
	}
	if cfg.StreamWindow <= 0 {
		cfg.StreamWindow = 16
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{st: st, cfg: cfg}
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
		}, func() float64 { return float64(s.inflight.Load()) }),
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
	resp, err := s.ingest(ctx, ws, req)
	if err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
}

// errBusy is returned when the in-flight budget is spent.
var errBusy = errors.New("ingestion is at its in-flight limit")

// invalidError is a request-level validation failure.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func (s *Server) ingest(ctx context.Context, ws string, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	start := time.Now()
	// Sizing walks every event, so the event sizes validation needs come
	// out of the same walk; a stack array holds them for common batches.
	var sizesBuf [128]int
	size, sizes := wire.RequestSize(req, sizesBuf[:0])
	if ferr := validate.Batch(len(req.GetEvents()), size, s.cfg.Limits); ferr != nil {
		return nil, &invalidError{ferr.Error()}
	}
	// A lone batch is always admitted, so that a budget smaller than one
	// batch cannot wedge the service.
	if n := s.inflight.Add(int64(size)); n > s.cfg.MaxInflightBytes && n != int64(size) {
		s.inflight.Add(-int64(size))
		return nil, errBusy
	}
	defer s.inflight.Add(-int64(size))

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
		outcomes, err := s.st.Ingest(ctx, ws, valid)
		if err != nil {
			return nil, err
		}
		for j, o := range outcomes {
			r := resp.Results[index[j]]
			r.Flags = valid[j].GetFlags()
			if o.Duplicate {
				r.Status = ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE
				resp.Duplicates++
				continue
			}
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED
			r.Position = o.Position
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
			return s.toStatus(ctx.Err())
		}
		resp := &ingestionv1.IngestStreamResponse{Sequence: p.seq, Result: p.resp}
		if p.err != nil {
			resp.Result = nil
			resp.Error = batchError(s.toStatus(p.err))
		}
		if err := srv.Send(resp); err != nil {
			return err
		}
	}
	if err := <-recvErr; !errors.Is(err, io.EOF) {
		return s.toStatus(err)
	}
	return nil
}

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
	l := s.st.Log()
	if req.GetPartition() >= l.Partitions() {
		return status.Errorf(codes.InvalidArgument, "partition: %d is out of range, the log has %d partitions", req.GetPartition(), l.Partitions())
	}
	err := l.Serve(srv.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
		resp := &ingestionv1.SubscribeResponse{HeadOffset: head, Records: make([]*ingestionv1.LogRecord, 0, len(recs))}
		for _, r := range recs {
			rec, err := store.Decode(r)
			if err != nil {
				return err
			}
			resp.Records = append(resp.Records, rec)
		}
		return srv.Send(resp)
	})
	if err != nil && srv.Context().Err() == nil {
		return s.toStatus(err)
	}
	return nil
}

// ListAccountEvents implements IngestionService.ListAccountEvents.
func (s *Server) ListAccountEvents(ctx context.Context, req *ingestionv1.ListAccountEventsRequest) (*ingestionv1.ListAccountEventsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if req.GetAccountId() == "" {
		return nil, status.Error(codes.InvalidArgument, "account_id: required")
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	q := store.TimelineQuery{Workspace: ws, Account: req.GetAccountId(), Name: req.GetName(), Source: req.GetSource(), Limit: size, After: after}
	if w := req.GetWindow(); w != nil {
		if w.GetStart() != nil {
			if w.GetStart().CheckValid() != nil {
				return nil, status.Error(codes.InvalidArgument, "window.start: invalid timestamp")
			}
			q.Start = w.GetStart().AsTime()
		}
		if w.GetEnd() != nil {
			if w.GetEnd().CheckValid() != nil {
				return nil, status.Error(codes.InvalidArgument, "window.end: invalid timestamp")
			}
			q.End = w.GetEnd().AsTime()
		}
		if !q.Start.IsZero() && !q.End.IsZero() && !q.End.After(q.Start) {
			return nil, status.Error(codes.InvalidArgument, "window.end: must be after window.start")
		}
	}
	events, next, err := s.st.Timeline(ctx, q)
	if err != nil {
		return nil, s.toStatus(err)
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
		return nil, status.Error(codes.InvalidArgument, "user_id: exactly one of user_id and account_id is required")
	}
	d, err := s.st.DeleteSubject(ctx, ws, req.GetUserId(), req.GetAccountId())
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &ingestionv1.DeleteSubjectResponse{EventsDeleted: d.Events, Tombstone: d.Tombstone}, nil
}

// GetLogInfo implements IngestionService.GetLogInfo.
func (s *Server) GetLogInfo(ctx context.Context, req *ingestionv1.GetLogInfoRequest) (*ingestionv1.GetLogInfoResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	l := s.st.Log()
	opts := s.st.Options()
	resp := &ingestionv1.GetLogInfoResponse{
		RetentionSeconds:   int64(opts.Retention / time.Second),
		DedupWindowSeconds: int64(opts.DedupWindow / time.Second),
	}
	for p := range l.Partitions() {
		resp.Partitions = append(resp.Partitions, &commonv1.PartitionInfo{Partition: p, FirstOffset: l.First(p), LastOffset: l.Head(p)})
	}
	return resp, nil
}

// toStatus translates an error into a gRPC status, once, at the edge.
func (s *Server) toStatus(err error) error {
	var inv *invalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.msg)
	case errors.Is(err, errBusy):
		st, derr := status.New(codes.ResourceExhausted, "ingestion is at its in-flight limit; retry later").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.cfg.RetryDelay)})
		if derr != nil {
			return status.Error(codes.ResourceExhausted, "ingestion is at its in-flight limit; retry later")
		}
		return st.Err()
	case errors.Is(err, store.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), store.ErrInvalidArgument.Error()+": "))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	case errors.Is(err, stream.ErrCompacted), errors.Is(err, stream.ErrBeyondHead):
		return stream.Status(err)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	s.cfg.Logger.Error("ingestion request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}
