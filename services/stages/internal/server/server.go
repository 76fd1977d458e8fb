// Package server implements the cairn.stages.v1.StagesService gRPC API over
// the engine and the store: journey definitions, replays, account journeys,
// lists, funnels, moments of truth, buying committees and the stages log.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/page"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/engine"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const svc = "/cairn.stages.v1.StagesService/"

// Policy is the minimum role per method: reads and validation need read,
// changing definitions needs admin, the log is for internal peers.
func Policy() auth.Policy {
	p := auth.Policy{}
	for _, m := range []string{"GetJourney", "ListJourneyVersions", "ListJourneyTemplates", "GetReplay", "GetAccountJourney",
		"ListAccounts", "ListSignals", "GetFunnel", "GetMomentsOfTruth", "GetBuyingCommittee", "ValidateJourney"} {
		p[svc+m] = auth.RoleRead
	}
	for _, m := range []string{"ApplyJourney", "ActivateJourney", "StartReplay"} {
		p[svc+m] = auth.RoleAdmin
	}
	p[svc+"Subscribe"] = auth.RoleService
	return p
}

// Options configure a Server.
type Options struct {
	// DB is the stages file.
	DB *pstore.DB
	// Log is the stages log served by Subscribe.
	Log *stream.Log
	// Engine evaluates journeys.
	Engine *engine.Engine
	// Source reads the ingestion log from offset 0 for replays; nil disables replays.
	Source stream.Source[*ingestionv1.LogRecord]
	// Partitions is the ingestion partition count.
	Partitions uint32
	// Clock is the evaluation time for queries.
	Clock clock.Clock
	// Logger reports internal errors, which clients only see as Internal.
	Logger *slog.Logger
}

// Server implements stagesv1.StagesServiceServer.
type Server struct {
	stagesv1.UnimplementedStagesServiceServer
	db      *pstore.DB
	log     *stream.Log
	eng     *engine.Engine
	source  stream.Source[*ingestionv1.LogRecord]
	parts   uint32
	clock   clock.Clock
	logger  *slog.Logger
	replays *replays
}

// New returns a server.
func New(opts Options) (*Server, error) {
	if opts.DB == nil || opts.Log == nil || opts.Engine == nil {
		return nil, errors.New("new stages server: DB, Log and Engine are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	s := &Server{db: opts.DB, log: opts.Log, eng: opts.Engine, source: opts.Source, parts: opts.Partitions, clock: opts.Clock, logger: opts.Logger}
	s.replays = newReplays(s)
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { stagesv1.RegisterStagesServiceServer(g, s) }

// Run runs replays until ctx ends; it is one of the service's background tasks.
func (s *Server) Run(ctx context.Context) error { return s.replays.run(ctx) }

// errInvalid carries a field path for InvalidArgument.
type errInvalid struct{ field, msg string }

// Error implements error.
func (e *errInvalid) Error() string { return e.field + ": " + e.msg }

func invalid(field, format string, args ...any) error {
	return &errInvalid{field: field, msg: fmt.Sprintf(format, args...)}
}

var errFailedPrecondition = errors.New("failed precondition")

var errAlreadyExists = errors.New("already exists")

// toStatus translates errors to gRPC status errors, once, at the edge.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var inv *errInvalid
	var ji *journey.InvalidError
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.Error())
	case errors.As(err, &ji):
		return status.Error(codes.InvalidArgument, ji.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	}
	s.logger.Error("stages request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}

const maxID = 128

func checkID(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid(field, "required")
	case len(v) > maxID:
		return invalid(field, "longer than %d characters", maxID)
	}
	return nil
}

// definitionOf reads a request's definition from the message or YAML.
func definitionOf(def *stagesv1.JourneyDefinition, yml string) (*stagesv1.JourneyDefinition, []*commonv1.ValidationError) {
	if def != nil {
		return proto.Clone(def).(*stagesv1.JourneyDefinition), nil
	}
	if strings.TrimSpace(yml) == "" {
		return nil, []*commonv1.ValidationError{{Path: "definition", Message: "set definition or yaml"}}
	}
	if len(yml) > journey.MaxYAMLBytes {
		return nil, []*commonv1.ValidationError{{Path: "yaml", Message: fmt.Sprintf("longer than %d bytes", journey.MaxYAMLBytes)}}
	}
	return journey.ProtoFromYAML([]byte(yml))
}

// ValidateJourney compiles a definition without storing it.
func (s *Server) ValidateJourney(ctx context.Context, req *stagesv1.ValidateJourneyRequest) (*stagesv1.ValidateJourneyResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	def, errs := definitionOf(req.GetDefinition(), req.GetYaml())
	if def != nil {
		errs = append(errs, journey.Validate(def)...)
	}
	return &stagesv1.ValidateJourneyResponse{Valid: len(errs) == 0, Errors: errs}, nil
}

// ApplyJourney stores a new version, activating it when asked or when it is the first.
func (s *Server) ApplyJourney(ctx context.Context, req *stagesv1.ApplyJourneyRequest) (*stagesv1.ApplyJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	def, errs := definitionOf(req.GetDefinition(), req.GetYaml())
	if def != nil {
		errs = append(errs, journey.Validate(def)...)
	}
	if len(errs) > 0 {
		return nil, s.toStatus(&journey.InvalidError{Errors: errs})
	}
	active := false
	err = s.db.Update(func(tx *bbolt.Tx) error {
		latest, err := store.LatestVersion(tx, ws, def.GetId())
		if err != nil {
			return err
		}
		def.Version = latest + 1
		def.CreatedAt = timestamppb.New(s.clock.Now())
		if err := store.PutDefinition(tx, ws, def); err != nil {
			return err
		}
		if _, err := store.Active(tx, ws, def.GetId()); errors.Is(err, store.ErrNotFound) || req.GetActivate() {
			active = true
			return store.SetActive(tx, ws, def.GetId(), def.GetVersion())
		}
		return nil
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("apply journey %q: %w", def.GetId(), err))
	}
	return &stagesv1.ApplyJourneyResponse{Definition: def, Active: active}, nil
}

// resolveJourney returns the journey id a request means: the named one, else
// "default" when it exists, else the workspace's first active journey.
func resolveJourney(tx *bbolt.Tx, ws, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	active, err := store.ActiveJourneys(tx, ws)
	if err != nil {
		return "", err
	}
	for _, a := range active {
		if a.ID == journey.DefaultJourney {
			return a.ID, nil
		}
	}
	if len(active) > 0 {
		return active[0].ID, nil
	}
	return "", fmt.Errorf("workspace has no active journey: %w", store.ErrNotFound)
}

// GetJourney returns one version (default: the active one) with its YAML.
func (s *Server) GetJourney(ctx context.Context, req *stagesv1.GetJourneyRequest) (*stagesv1.GetJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	resp := &stagesv1.GetJourneyResponse{}
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, req.GetJourneyId())
		if err != nil {
			return err
		}
		def, err := store.GetDefinition(tx, ws, id, req.GetVersion())
		if err != nil {
			return err
		}
		act, err := store.Active(tx, ws, id)
		resp.Definition, resp.Active = def, err == nil && act == def.GetVersion()
		return nil
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	if resp.Yaml, err = journey.ProtoYAML(resp.Definition); err != nil {
		return nil, s.toStatus(err)
	}
	return resp, nil
}

// ListJourneyVersions lists versions newest first.
func (s *Server) ListJourneyVersions(ctx context.Context, req *stagesv1.ListJourneyVersionsRequest) (*stagesv1.ListJourneyVersionsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	var before uint32
	if after != nil {
		if len(after) != 4 {
			return nil, status.Error(codes.InvalidArgument, "page.page_token: malformed; pass next_page_token from the previous response unchanged")
		}
		before = uint32(after[0])<<24 | uint32(after[1])<<16 | uint32(after[2])<<8 | uint32(after[3])
	}
	resp := &stagesv1.ListJourneyVersionsResponse{}
	more := false
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, req.GetJourneyId())
		if err != nil {
			return err
		}
		if v, err := store.Active(tx, ws, id); err == nil {
			resp.ActiveVersion = v
		}
		return store.Versions(tx, ws, id, before, func(d *stagesv1.JourneyDefinition) (bool, error) {
			if len(resp.Definitions) == size {
				more = true
				return false, nil
			}
			resp.Definitions = append(resp.Definitions, d)
			return true, nil
		})
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	var last []byte
	if n := len(resp.Definitions); n > 0 {
		v := resp.Definitions[n-1].GetVersion()
		last = []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	resp.Page = page.Response(last, more, -1)
	return resp, nil
}

// ListJourneyTemplates returns the built-in templates.
func (s *Server) ListJourneyTemplates(ctx context.Context, req *stagesv1.ListJourneyTemplatesRequest) (*stagesv1.ListJourneyTemplatesResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	all, err := journey.Templates()
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp := &stagesv1.ListJourneyTemplatesResponse{}
	more := false
	for _, t := range all {
		if after != nil && t.GetId() <= string(after) {
			continue
		}
		if len(resp.Templates) == size {
			more = true
			break
		}
		resp.Templates = append(resp.Templates, t)
	}
	var last []byte
	if n := len(resp.Templates); n > 0 {
		last = []byte(resp.Templates[n-1].GetId())
	}
	resp.Page = page.Response(last, more, int64(len(all)))
	return resp, nil
}

// GetAccountJourney returns an account's stage, history and what's left.
func (s *Server) GetAccountJourney(ctx context.Context, req *stagesv1.GetAccountJourneyRequest) (*stagesv1.GetAccountJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, s.toStatus(err)
	}
	if err := checkID("journey_id", req.GetJourneyId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	now := s.clock.Now()
	var aj *stagesv1.AccountJourney
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, req.GetJourneyId())
		if err != nil {
			return err
		}
		acc, err := store.Live.GetAccount(tx, ws, id, req.GetAccountId())
		if err != nil {
			return err
		}
		aj = acc.Journey
		if aj.GetStage() == "" {
			return nil
		}
		j, err := s.eng.Journey(tx, ws, id, aj.GetVersion())
		if err != nil {
			return err
		}
		entered := aj.GetEnteredAt().AsTime()
		if now.After(entered) {
			aj.TimeInStage = durationpb.New(now.Sub(entered))
		}
		aj.ExitCriteria, aj.DropoffCriteria = j.NewEvaluator().Explain(acc.Aggs, journey.State{Stage: aj.GetStage(), EnteredAt: entered}, now)
		return nil
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("get journey of account %q: %w", req.GetAccountId(), err))
	}
	return &stagesv1.GetAccountJourneyResponse{Journey: aj}, nil
}

// ListAccounts lists accounts by stage, open signal, segment and owner.
func (s *Server) ListAccounts(ctx context.Context, req *stagesv1.ListAccountsRequest) (*stagesv1.ListAccountsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"journey_id", req.GetJourneyId()}, {"stage", req.GetStage()}, {"signal", req.GetSignal()}, {"segment", req.GetSegment()}, {"owner", req.GetOwner()}} {
		if err := checkID(f.name, f.v, false); err != nil {
			return nil, s.toStatus(err)
		}
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	resp := &stagesv1.ListAccountsResponse{}
	var last []byte
	more := false
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, req.GetJourneyId())
		if err != nil {
			return err
		}
		return store.Live.Accounts(tx, ws, id, after, func(key []byte, aj *stagesv1.AccountJourney) (bool, error) {
			if !matches(aj, req) {
				return true, nil
			}
			if len(resp.Accounts) == size {
				more = true
				return false, nil
			}
			resp.Accounts = append(resp.Accounts, &stagesv1.AccountSummary{
				AccountId: aj.GetAccountId(), Name: aj.GetTraits()["name"], Stage: aj.GetStage(), EnteredAt: aj.GetEnteredAt(),
				Segment: aj.GetTraits()["segment"], Owner: aj.GetTraits()["owner"], OpenSignals: int32(len(aj.GetOpenSignals())),
			})
			last = append(last[:0], key...)
			return true, nil
		})
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp.Page = page.Response(last, more, -1)
	return resp, nil
}

func matches(aj *stagesv1.AccountJourney, req *stagesv1.ListAccountsRequest) bool {
	if aj.GetStage() == "" {
		return false
	}
	if req.GetStage() != "" && aj.GetStage() != req.GetStage() {
		return false
	}
	if req.GetSegment() != "" && aj.GetTraits()["segment"] != req.GetSegment() {
		return false
	}
	if req.GetOwner() != "" && aj.GetTraits()["owner"] != req.GetOwner() {
		return false
	}
	if req.GetSignal() != "" {
		for _, sg := range aj.GetOpenSignals() {
			if sg.GetReason() == req.GetSignal() || sg.GetAttributes()["criterion"] == req.GetSignal() {
				return true
			}
		}
		return false
	}
	return true
}

// ListSignals lists drop-off signals.
func (s *Server) ListSignals(ctx context.Context, req *stagesv1.ListSignalsRequest) (*stagesv1.ListSignalsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), false); err != nil {
		return nil, s.toStatus(err)
	}
	if err := checkID("reason", req.GetReason(), false); err != nil {
		return nil, s.toStatus(err)
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	resp := &stagesv1.ListSignalsResponse{}
	var last []byte
	more := false
	err = s.db.View(func(tx *bbolt.Tx) error {
		return store.Live.Signals(tx, ws, req.GetAccountId(), after, func(key []byte, sg *commonv1.Signal) (bool, error) {
			if req.GetState() != commonv1.SignalState_SIGNAL_STATE_UNSPECIFIED && sg.GetState() != req.GetState() {
				return true, nil
			}
			if req.GetReason() != "" && sg.GetReason() != req.GetReason() {
				return true, nil
			}
			if len(resp.Signals) == size {
				more = true
				return false, nil
			}
			resp.Signals = append(resp.Signals, sg)
			last = append(last[:0], key...)
			return true, nil
		})
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp.Page = page.Response(last, more, -1)
	return resp, nil
}

// Subscribe streams the stages log of one partition.
func (s *Server) Subscribe(req *stagesv1.SubscribeRequest, stream_ grpc.ServerStreamingServer[stagesv1.SubscribeResponse]) error {
	if req.GetPartition() >= s.log.Partitions() {
		return status.Errorf(codes.InvalidArgument, "partition: must be below %d", s.log.Partitions())
	}
	err := s.log.Serve(stream_.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []stream.Record, head uint64) error {
		resp := &stagesv1.SubscribeResponse{HeadOffset: head, Records: make([]*stagesv1.LogRecord, 0, len(recs))}
		for _, r := range recs {
			lr := &stagesv1.LogRecord{}
			if err := proto.Unmarshal(r.Data, lr); err != nil {
				return fmt.Errorf("decode stages record %d: %w", r.Offset, err)
			}
			lr.Offset, lr.Partition = r.Offset, r.Partition
			resp.Records = append(resp.Records, lr)
		}
		return stream_.Send(resp)
	})
	if err != nil && stream_.Context().Err() == nil {
		return stream.Status(err)
	}
	return nil
}

// cohortOf is the month an account entered the journey.
func cohortOf(aj *stagesv1.AccountJourney) string { return aj.GetTraits()["cohort"] }

// checkCohort validates a "2026-03" cohort filter.
func checkCohort(c string) error {
	if c == "" {
		return nil
	}
	if _, err := time.Parse("2006-01", c); err != nil {
		return invalid("cohort", "want a month such as \"2026-03\"")
	}
	return nil
}
