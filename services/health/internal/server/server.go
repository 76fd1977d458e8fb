// Package server is the health service's gRPC edge: it implements
// cairn.health.v1.HealthService by decoding and validating requests (field
// errors through apierr) and calling the application (App, implemented by
// internal/app), whose errors it returns as they are: pkg/server's
// interceptor maps them to statuses once.
package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"

	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
)

// Policy is the minimum role of every method (pkg/methods, the one table
// of each method's role, REST route and gateway routing).
func Policy() auth.Policy { return methods.Policy(methods.Health) }

// App is the health application the server calls (internal/app's App):
// the use cases of the API, each in its own transaction, with validated
// input. Their errors are apierr errors (a missing record matches
// apierr.ErrNotFound) or unexpected ones.
type App interface {
	// ValidateModel lists a model's problems, none when it is valid.
	ValidateModel(m *healthv1.Model) []*commonv1.ValidationError
	// ApplyModel stores a valid model as the next version of its id and
	// activates it with activate.
	ApplyModel(ctx context.Context, ws string, m *healthv1.Model, activate bool) (_ *healthv1.Model, active, unchanged bool, err error)
	// GetModel returns a stored model version (the active one when id and
	// version are empty) and whether it is active.
	GetModel(ctx context.Context, ws, id string, version uint32) (*healthv1.Model, bool, error)
	// ListModelVersions returns up to n versions of a model below before,
	// newest first, and its active version.
	ListModelVersions(ctx context.Context, ws, id string, before uint32, n int) ([]*healthv1.Model, uint32, error)
	GetAccountHealth(ctx context.Context, ws, acct string) (*healthv1.AccountHealth, error)
	// History returns up to n snapshots from before back to from, newest
	// first, and whether more remain.
	History(ctx context.Context, ws, acct, from, before string, n int) ([]*healthv1.Snapshot, bool, error)
	ListAccounts(ctx context.Context, ws string, band healthv1.Band, signal string, renewalWindow int, by healthv1.AccountSort) ([]*healthv1.AccountRow, error)
	// ListSignals returns up to n signals after the key after and the key
	// to continue after, nil at the end.
	ListSignals(ctx context.Context, ws, acct string, kind commonv1.SignalKind, state commonv1.SignalState, after []byte, n int) ([]*commonv1.Signal, []byte, error)
	Backtest(ctx context.Context, ws string, m *healthv1.Model, id string, version uint32, horizonDays int32, parts bool) (*healthv1.BacktestResponse, error)
	// Rescore rescores every account of the workspace and returns how many.
	Rescore(ctx context.Context, ws string) (int, error)
	// Now is the service clock's time.
	Now() time.Time
}

// Server is the HealthService implementation.
type Server struct {
	healthv1.UnimplementedHealthServiceServer
	app App
	log *stream.Log
	lag func() []stream.Lag
}

// New returns a Server over a; log serves Subscribe, and lag reports the
// lag of the service's consumers for GetStatus (pkg/server.Lags.Lag; nil
// reports none).
func New(a App, log *stream.Log, lag func() []stream.Lag) *Server {
	return &Server{app: a, log: log, lag: lag}
}

// Register adds the service to g.
func (s *Server) Register(g grpc.ServiceRegistrar) { healthv1.RegisterHealthServiceServer(g, s) }

// invalidModel is a model's problems as the request's field errors:
// InvalidArgument with one violation per problem, "model: <path>:
// <problem>; ...". It is nil when there are none.
func invalidModel(probs []*commonv1.ValidationError) error {
	vs := make([]apierr.Violation, 0, len(probs))
	for _, p := range probs {
		vs = append(vs, apierr.Violation{Field: p.GetPath(), Description: p.GetMessage()})
	}
	return apierr.Fields("model", vs)
}

// modelFrom takes a request's model message or YAML (exactly one). YAML
// that does not parse is a *model.ValidationError.
func modelFrom(m *healthv1.Model, yaml string) (*healthv1.Model, error) {
	switch {
	case m != nil && yaml != "":
		return nil, apierr.Field("model", "set either model or yaml, not both")
	case m != nil:
		return proto.Clone(m).(*healthv1.Model), nil
	case yaml != "":
		return model.ParseYAML([]byte(yaml))
	}
	return nil, apierr.Field("model", "required (model or yaml)")
}

// validModel takes a request's model (modelFrom) and validates it.
func (s *Server) validModel(m *healthv1.Model, yaml string) (*healthv1.Model, error) {
	m, err := modelFrom(m, yaml)
	if ve := (*model.ValidationError)(nil); errors.As(err, &ve) {
		return nil, invalidModel(ve.Problems)
	}
	if err != nil {
		return nil, err
	}
	if err := invalidModel(s.app.ValidateModel(m)); err != nil {
		return nil, err
	}
	return m, nil
}

// ValidateModel compiles a model without storing it.
func (s *Server) ValidateModel(ctx context.Context, req *healthv1.ValidateModelRequest) (*healthv1.ValidateModelResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	m, err := modelFrom(req.GetModel(), req.GetYaml())
	var ve *model.ValidationError
	if errors.As(err, &ve) {
		return &healthv1.ValidateModelResponse{Errors: ve.Problems}, nil
	}
	if err != nil {
		return nil, err
	}
	probs := s.app.ValidateModel(m)
	return &healthv1.ValidateModelResponse{Valid: len(probs) == 0, Errors: probs}, nil
}

// ApplyModel stores a new model version and optionally activates it.
func (s *Server) ApplyModel(ctx context.Context, req *healthv1.ApplyModelRequest) (*healthv1.ApplyModelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	m, err := s.validModel(req.GetModel(), req.GetYaml())
	if err != nil {
		return nil, err
	}
	m, active, unchanged, err := s.app.ApplyModel(ctx, ws, m, req.GetActivate())
	if err != nil {
		return nil, err
	}
	return &healthv1.ApplyModelResponse{Model: m, Active: active, Unchanged: unchanged}, nil
}

// GetModel returns a stored version, the active one by default, or the
// built-in default model (version 0) when the workspace never applied one.
func (s *Server) GetModel(ctx context.Context, req *healthv1.GetModelRequest) (*healthv1.GetModelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("model_id", req.GetModelId(), false); err != nil {
		return nil, err
	}
	m, active, err := s.app.GetModel(ctx, ws, req.GetModelId(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	y, err := model.DumpYAML(m)
	if err != nil {
		return nil, err
	}
	return &healthv1.GetModelResponse{Model: m, Active: active, Yaml: y}, nil
}

// ListModelVersions lists a model's versions, newest first.
func (s *Server) ListModelVersions(ctx context.Context, req *healthv1.ListModelVersionsRequest) (*healthv1.ListModelVersionsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("model_id", req.GetModelId(), false); err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	ms, active, err := s.app.ListModelVersions(ctx, ws, req.GetModelId(), uint32(kv.ParseU64(after)), size+1)
	if err != nil {
		return nil, err
	}
	more := len(ms) > size
	var last []byte
	if more {
		ms = ms[:size]
		last = kv.U64(uint64(ms[len(ms)-1].GetVersion()))
	}
	return &healthv1.ListModelVersionsResponse{Models: ms, ActiveVersion: active, Page: page.Response(last, more, -1)}, nil
}

// GetAccountHealth returns an account's score with its explanation.
func (s *Server) GetAccountHealth(ctx context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("account_id", req.GetAccountId(), true); err != nil {
		return nil, err
	}
	h, err := s.app.GetAccountHealth(ctx, ws, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &healthv1.GetAccountHealthResponse{Health: h}, nil
}

// ListHealthHistory returns daily snapshots, newest first.
func (s *Server) ListHealthHistory(ctx context.Context, req *healthv1.ListHealthHistoryRequest) (*healthv1.ListHealthHistoryResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("account_id", req.GetAccountId(), true); err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	// Window [start, end) on days: a snapshot's day must be >= start's day
	// and < end's day (end exclusive, rounded up to whole days).
	from, to := "", ""
	if w := req.GetWindow(); w != nil {
		if w.GetStart() != nil {
			from = w.GetStart().AsTime().UTC().Format(time.DateOnly)
		}
		if w.GetEnd() != nil {
			e := w.GetEnd().AsTime().UTC()
			if !e.Equal(e.Truncate(24 * time.Hour)) {
				e = e.Truncate(24 * time.Hour).Add(24 * time.Hour)
			}
			to = e.Format(time.DateOnly)
		}
	}
	before := string(after)
	if to != "" && (before == "" || to < before) {
		before = to
	}
	snaps, more, err := s.app.History(ctx, ws, req.GetAccountId(), from, before, size)
	if err != nil {
		return nil, err
	}
	var last []byte
	if more {
		last = []byte(snaps[len(snaps)-1].GetDay())
	}
	return &healthv1.ListHealthHistoryResponse{Snapshots: snaps, Page: page.Response(last, more, -1)}, nil
}

// ListAccounts filters accounts by band, open signal or renewal window and
// sorts them. Pages are offsets into the sorted result.
func (s *Server) ListAccounts(ctx context.Context, req *healthv1.ListAccountsRequest) (*healthv1.ListAccountsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("signal", req.GetSignal(), false); err != nil {
		return nil, err
	}
	if _, ok := healthv1.Band_name[int32(req.GetBand())]; !ok {
		return nil, apierr.Field("band", "unknown band")
	}
	if rw := req.GetRenewalWindow(); rw != 0 {
		ok := false
		for _, w := range signals.Windows() {
			ok = ok || int(rw) == w
		}
		if !ok {
			return nil, apierr.Field("renewal_window", "must be 120, 90, 60 or 30")
		}
	}
	rows, err := s.app.ListAccounts(ctx, ws, req.GetBand(), req.GetSignal(), int(req.GetRenewalWindow()), req.GetSort())
	if err != nil {
		return nil, err
	}
	off := int(kv.ParseU64(after))
	if off > len(rows) {
		off = len(rows)
	}
	end := min(off+size, len(rows))
	var next []byte
	if end < len(rows) {
		next = kv.U64(uint64(end))
	}
	return &healthv1.ListAccountsResponse{Accounts: rows[off:end], Page: page.Response(next, next != nil, int64(len(rows)))}, nil
}

// ListSignals lists signals, open and closed, by account then reason.
func (s *Server) ListSignals(ctx context.Context, req *healthv1.ListSignalsRequest) (*healthv1.ListSignalsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("account_id", req.GetAccountId(), false); err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	sigs, next, err := s.app.ListSignals(ctx, ws, req.GetAccountId(), req.GetKind(), req.GetState(), after, size)
	if err != nil {
		return nil, err
	}
	return &healthv1.ListSignalsResponse{Signals: sigs, Page: page.Response(next, next != nil, -1)}, nil
}

// Backtest measures how well a model's past scores predicted outcomes.
func (s *Server) Backtest(ctx context.Context, req *healthv1.BacktestRequest) (*healthv1.BacktestResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if req.GetHorizonDays() < 0 || req.GetHorizonDays() > 3650 {
		return nil, apierr.Field("horizon_days", "must be between 0 and 3650")
	}
	if err := apierr.CheckID("model_id", req.GetModelId(), false); err != nil {
		return nil, err
	}
	m := req.GetModel()
	if m != nil {
		if err := invalidModel(s.app.ValidateModel(m)); err != nil {
			return nil, err
		}
	}
	return s.app.Backtest(ctx, ws, m, req.GetModelId(), req.GetVersion(), req.GetHorizonDays(), req.GetParts())
}

// Rescore recomputes every account of the workspace with the active model.
func (s *Server) Rescore(ctx context.Context, req *healthv1.RescoreRequest) (*healthv1.RescoreResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	start := s.app.Now()
	n, err := s.app.Rescore(ctx, ws)
	if err != nil {
		return nil, err
	}
	return &healthv1.RescoreResponse{Accounts: int64(n), ElapsedMs: s.app.Now().Sub(start).Milliseconds()}, nil
}

// Subscribe streams the health log of one partition.
func (s *Server) Subscribe(req *healthv1.SubscribeRequest, ss grpc.ServerStreamingServer[healthv1.SubscribeResponse]) error {
	if req.GetPartition() >= s.log.Partitions() {
		return apierr.Field("partition", "must be below %d", s.log.Partitions())
	}
	err := s.log.Serve(ss.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
		resp := &healthv1.SubscribeResponse{HeadOffset: head, Records: make([]*healthv1.LogRecord, 0, len(recs))}
		for _, r := range recs {
			lr := &healthv1.LogRecord{}
			if err := proto.Unmarshal(r.Data, lr); err != nil {
				return fmt.Errorf("decode health log record %d/%d: %w", r.Partition, r.Offset, err)
			}
			lr.Offset, lr.Partition = r.Offset, r.Partition
			resp.Records = append(resp.Records, lr)
		}
		return ss.Send(resp)
	})
	return err
}
