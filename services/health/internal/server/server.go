// Package server implements cairn.health.v1.HealthService over the health
// store and engine. Errors are translated to gRPC status codes in one place,
// toStatus.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/page"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"go.etcd.io/bbolt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/services/health/internal/engine"
	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/signals"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// maxIDLen bounds account and model ids in requests.
const maxIDLen = 256

// Policy is the minimum role of every HealthService method.
func Policy() auth.Policy {
	const svc = "/cairn.health.v1.HealthService/"
	return auth.Policy{
		svc + "ValidateModel":     auth.RoleRead,
		svc + "ApplyModel":        auth.RoleAdmin,
		svc + "GetModel":          auth.RoleRead,
		svc + "ListModelVersions": auth.RoleRead,
		svc + "GetAccountHealth":  auth.RoleRead,
		svc + "ListHealthHistory": auth.RoleRead,
		svc + "ListAccounts":      auth.RoleRead,
		svc + "ListSignals":       auth.RoleRead,
		svc + "Backtest":          auth.RoleRead,
		svc + "Rescore":           auth.RoleAdmin,
		svc + "Subscribe":         auth.RoleService,
	}
}

// Server is the HealthService implementation.
type Server struct {
	healthv1.UnimplementedHealthServiceServer
	db     *kv.DB
	eng    *engine.Engine
	log    *stream.Log
	clk    clock.Clock
	logger *slog.Logger
}

// New returns a Server.
func New(db *kv.DB, eng *engine.Engine, log *stream.Log, clk clock.Clock, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{db: db, eng: eng, log: log, clk: clk, logger: logger}
}

// Register adds the service to g.
func (s *Server) Register(g grpc.ServiceRegistrar) { healthv1.RegisterHealthServiceServer(g, s) }

// invalid is a client error naming a field.
type invalid struct{ field, msg string }

func (e *invalid) Error() string { return e.field + ": " + e.msg }

func badField(field, msg string) error { return &invalid{field: field, msg: msg} }

// toStatus is the one translation from internal errors to gRPC status.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	var iv *invalid
	var ve *model.ValidationError
	switch {
	case errors.As(err, &iv):
		st, _ := status.New(codes.InvalidArgument, iv.Error()).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: iv.field, Description: iv.msg}}})
		return st.Err()
	case errors.As(err, &ve):
		br := &errdetails.BadRequest{}
		for _, p := range ve.Problems {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: p.GetPath(), Description: p.GetMessage()})
		}
		st, _ := status.New(codes.InvalidArgument, "model: "+ve.Error()).WithDetails(br)
		return st.Err()
	case errors.Is(err, page.ErrInvalidToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, kv.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.logger.Error("health request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}

func checkID(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return badField(field, "required")
	case len(v) > maxIDLen:
		return badField(field, fmt.Sprintf("longer than %d characters", maxIDLen))
	}
	return nil
}

// modelFrom takes a request's model message or YAML (exactly one).
func modelFrom(m *healthv1.Model, yaml string) (*healthv1.Model, error) {
	switch {
	case m != nil && yaml != "":
		return nil, badField("model", "set either model or yaml, not both")
	case m != nil:
		return proto.Clone(m).(*healthv1.Model), nil
	case yaml != "":
		return model.ParseYAML([]byte(yaml))
	}
	return nil, badField("model", "required (model or yaml)")
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
		return nil, s.toStatus(err)
	}
	probs := model.Validate(m, s.eng.Compiler())
	return &healthv1.ValidateModelResponse{Valid: len(probs) == 0, Errors: probs}, nil
}

// ApplyModel stores a new model version and optionally activates it.
func (s *Server) ApplyModel(ctx context.Context, req *healthv1.ApplyModelRequest) (*healthv1.ApplyModelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	m, err := modelFrom(req.GetModel(), req.GetYaml())
	if err != nil {
		return nil, s.toStatus(err)
	}
	if m.GetId() == "" {
		m.Id = "default"
	}
	if _, err := model.Compile(m, s.eng.Compiler()); err != nil {
		return nil, s.toStatus(err)
	}
	m.CreatedAt = timestamppb.New(s.clk.Now())
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := store.PutModel(tx, ws, m); err != nil {
			return err
		}
		if req.GetActivate() {
			return store.SetActive(tx, ws, m.GetId(), m.GetVersion())
		}
		return nil
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("apply model %q: %w", m.GetId(), err))
	}
	return &healthv1.ApplyModelResponse{Model: m, Active: req.GetActivate()}, nil
}

// GetModel returns a stored version, the active one by default, or the
// built-in default model (version 0) when the workspace never applied one.
func (s *Server) GetModel(ctx context.Context, req *healthv1.GetModelRequest) (*healthv1.GetModelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("model_id", req.GetModelId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	var resp healthv1.GetModelResponse
	err = s.db.View(func(tx *bbolt.Tx) error {
		activeID, activeVer, err := store.Active(tx, ws)
		if errors.Is(err, store.ErrNotFound) {
			activeID, activeVer = "default", 0
		} else if err != nil {
			return err
		}
		id, ver := req.GetModelId(), req.GetVersion()
		wantActive := id == "" && ver == 0
		if id == "" {
			id = activeID
		}
		if wantActive {
			ver = activeVer
		} else if ver == 0 {
			// No version: the active one if this id is active, else the
			// newest stored; the built-in default is version 0 of "default".
			if id == activeID && activeVer != 0 {
				ver = activeVer
			} else {
				ms, err := store.ListModels(tx, ws, id, 0, 1)
				if err != nil {
					return err
				}
				switch {
				case len(ms) > 0:
					ver = ms[0].GetVersion()
				case id != "default":
					return fmt.Errorf("model %q: %w", id, store.ErrNotFound)
				}
			}
		}
		if ver == 0 { // the built-in default, never stored
			resp.Model = proto.Clone(s.eng.Default().Model).(*healthv1.Model)
		} else if resp.Model, err = store.GetModel(tx, ws, id, ver); err != nil {
			return err
		}
		resp.Active = id == activeID && ver == activeVer
		return nil
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	if resp.Yaml, err = model.DumpYAML(resp.Model); err != nil {
		return nil, s.toStatus(err)
	}
	return &resp, nil
}

// ListModelVersions lists a model's versions, newest first.
func (s *Server) ListModelVersions(ctx context.Context, req *healthv1.ListModelVersionsRequest) (*healthv1.ListModelVersionsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("model_id", req.GetModelId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	id := req.GetModelId()
	if id == "" {
		id = "default"
	}
	resp := &healthv1.ListModelVersionsResponse{}
	err = s.db.View(func(tx *bbolt.Tx) error {
		aid, aver, err := store.Active(tx, ws)
		if err == nil && aid == id {
			resp.ActiveVersion = aver
		}
		ms, err := store.ListModels(tx, ws, id, uint32(kv.ParseU64(after)), size+1)
		if err != nil {
			return err
		}
		more := len(ms) > size
		if more {
			ms = ms[:size]
		}
		resp.Models = ms
		var last []byte
		if more {
			last = kv.U64(uint64(ms[len(ms)-1].GetVersion()))
		}
		resp.Page = page.Response(last, more, -1)
		return nil
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
}

// GetAccountHealth returns an account's score with its explanation.
func (s *Server) GetAccountHealth(ctx context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	var h *healthv1.AccountHealth
	err = s.db.View(func(tx *bbolt.Tx) error {
		h, err = store.GetHealth(tx, ws, req.GetAccountId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &healthv1.GetAccountHealthResponse{Health: h}, nil
}

// ListHealthHistory returns daily snapshots, newest first.
func (s *Server) ListHealthHistory(ctx context.Context, req *healthv1.ListHealthHistoryRequest) (*healthv1.ListHealthHistoryResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, s.toStatus(err)
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
	resp := &healthv1.ListHealthHistoryResponse{}
	err = s.db.View(func(tx *bbolt.Tx) error {
		more := false
		err := store.ScanSnapshots(tx, ws, req.GetAccountId(), before, func(sn *store.Snapshot) (bool, error) {
			if from != "" && sn.Day < from {
				return false, nil
			}
			if len(resp.Snapshots) == size {
				more = true
				return false, nil
			}
			resp.Snapshots = append(resp.Snapshots, &healthv1.Snapshot{Day: sn.Day, Score: sn.Score, Band: sn.Band})
			return true, nil
		})
		var last []byte
		if more {
			last = []byte(resp.Snapshots[len(resp.Snapshots)-1].GetDay())
		}
		resp.Page = page.Response(last, more, -1)
		return err
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
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
	if len(req.GetSignal()) > maxIDLen {
		return nil, s.toStatus(badField("signal", fmt.Sprintf("longer than %d characters", maxIDLen)))
	}
	if _, ok := healthv1.Band_name[int32(req.GetBand())]; !ok {
		return nil, s.toStatus(badField("band", "unknown band"))
	}
	var reasons []string
	if req.GetSignal() != "" {
		reasons = append(reasons, req.GetSignal())
	}
	if rw := req.GetRenewalWindow(); rw != 0 {
		ok := false
		for _, w := range signals.Windows() {
			ok = ok || int(rw) == w
		}
		if !ok {
			return nil, s.toStatus(badField("renewal_window", "must be 120, 90, 60 or 30"))
		}
		reasons = append(reasons, signals.RenewalReason(int(rw)))
	}
	var rows []*healthv1.AccountRow
	err = s.db.View(func(tx *bbolt.Tx) error {
		var only map[string]bool
		for _, r := range reasons {
			set, err := store.AccountsWithSignal(tx, ws, r)
			if err != nil {
				return err
			}
			if only == nil {
				only = set
				continue
			}
			for a := range only {
				if !set[a] {
					delete(only, a)
				}
			}
		}
		keep := func(r *healthv1.AccountRow) {
			if req.GetBand() == healthv1.Band_BAND_UNSPECIFIED || r.GetBand() == req.GetBand() {
				rows = append(rows, r)
			}
		}
		if only != nil {
			ids := make([]string, 0, len(only))
			for a := range only {
				ids = append(ids, a)
			}
			sort.Strings(ids)
			for _, a := range ids {
				r, err := store.GetRow(tx, ws, a)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				keep(r)
			}
			return nil
		}
		return store.ForEachRow(tx, ws, func(r *healthv1.AccountRow) error { keep(r); return nil })
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	var less func(a, b *healthv1.AccountRow) bool
	switch req.GetSort() {
	case healthv1.AccountSort_ACCOUNT_SORT_ARR:
		less = func(a, b *healthv1.AccountRow) bool { return a.GetArr() > b.GetArr() }
	case healthv1.AccountSort_ACCOUNT_SORT_SCORE_CHANGE:
		// Biggest drops first: that is what a CSM triages.
		less = func(a, b *healthv1.AccountRow) bool { return a.GetScoreChange_30D() < b.GetScoreChange_30D() }
	case healthv1.AccountSort_ACCOUNT_SORT_SCORE:
		less = func(a, b *healthv1.AccountRow) bool { return a.GetScore() < b.GetScore() }
	}
	if less != nil {
		sort.SliceStable(rows, func(i, j int) bool { return less(rows[i], rows[j]) })
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
	if err := checkID("account_id", req.GetAccountId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	resp := &healthv1.ListSignalsResponse{}
	err = s.db.View(func(tx *bbolt.Tx) error {
		var last []byte
		more := false
		err := store.ScanSignals(tx, ws, req.GetAccountId(), after, func(k []byte, sg *commonv1.Signal) (bool, error) {
			if req.GetKind() != commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED && sg.GetKind() != req.GetKind() {
				return true, nil
			}
			if req.GetState() != commonv1.SignalState_SIGNAL_STATE_UNSPECIFIED && sg.GetState() != req.GetState() {
				return true, nil
			}
			if len(resp.Signals) == size {
				more = true
				return false, nil
			}
			resp.Signals = append(resp.Signals, sg)
			last = append(last[:0], k...)
			return true, nil
		})
		if !more {
			last = nil
		}
		resp.Page = page.Response(last, more, -1)
		return err
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
}

// Backtest measures how well a model's past scores predicted outcomes.
func (s *Server) Backtest(ctx context.Context, req *healthv1.BacktestRequest) (*healthv1.BacktestResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if req.GetHorizonDays() < 0 || req.GetHorizonDays() > 3650 {
		return nil, s.toStatus(badField("horizon_days", "must be between 0 and 3650"))
	}
	if err := checkID("model_id", req.GetModelId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	var resp *healthv1.BacktestResponse
	err = s.db.View(func(tx *bbolt.Tx) error {
		m := req.GetModel()
		if m == nil {
			cm, err := s.eng.Model(tx, ws)
			if err != nil {
				return err
			}
			m = cm.Model
			if req.GetModelId() != "" || req.GetVersion() != 0 {
				id := req.GetModelId()
				if id == "" {
					id = m.GetId()
				}
				ver := req.GetVersion()
				if ver == 0 {
					ms, err := store.ListModels(tx, ws, id, 0, 1)
					if err != nil {
						return err
					}
					if len(ms) == 0 {
						return fmt.Errorf("model %q: %w", id, store.ErrNotFound)
					}
					ver = ms[0].GetVersion()
				}
				if m, err = store.GetModel(tx, ws, id, ver); err != nil {
					return err
				}
			}
		} else if _, err := model.Compile(m, s.eng.Compiler()); err != nil {
			return err
		}
		var err error
		resp, err = s.eng.Backtest(tx, ws, m, req.GetHorizonDays(), req.GetParts())
		return err
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
}

// Rescore recomputes every account of the workspace with the active model.
func (s *Server) Rescore(ctx context.Context, req *healthv1.RescoreRequest) (*healthv1.RescoreResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	start := s.clk.Now()
	n, err := s.eng.Rescore(ctx, s.db, ws)
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &healthv1.RescoreResponse{Accounts: int64(n), ElapsedMs: s.clk.Now().Sub(start).Milliseconds()}, nil
}

// Subscribe streams the health log of one partition.
func (s *Server) Subscribe(req *healthv1.SubscribeRequest, ss grpc.ServerStreamingServer[healthv1.SubscribeResponse]) error {
	if req.GetPartition() >= s.log.Partitions() {
		return s.toStatus(badField("partition", fmt.Sprintf("must be below %d", s.log.Partitions())))
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
	return stream.Status(err)
}
