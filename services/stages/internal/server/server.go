// Package server implements the cairn.stages.v1.StagesService gRPC API: it
// decodes and validates requests, calls the application (internal/app) and
// returns its answers and errors, which pkg/server's interceptor maps to
// gRPC status (pkg/apierr). It also serves the stages log to subscribers.
package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
)

const svc = "/cairn.stages.v1.StagesService/"

// Policy is the minimum role of every method (pkg/methods, the one table
// of each method's role, REST route and gateway routing).
func Policy() auth.Policy { return methods.Policy(methods.Stages) }

// App is what the API needs of the application: internal/app.App. (The
// application wires the server, so the server names it by its methods.)
type App interface {
	ApplyJourney(ctx context.Context, ws string, def *stagesv1.JourneyDefinition, activate bool) (_ *stagesv1.JourneyDefinition, active, unchanged bool, err error)
	GetJourney(ctx context.Context, ws, id string, version uint32) (*stagesv1.JourneyDefinition, bool, error)
	ListJourneyVersions(ctx context.Context, ws, id string, before uint32, size int) ([]*stagesv1.JourneyDefinition, uint32, bool, error)
	ActivateJourney(ctx context.Context, ws, id string, version uint32) (*stagesv1.JourneyDefinition, error)
	StartReplay(ctx context.Context, ws, id string, version uint32, replayID string) (*stagesv1.Replay, error)
	GetReplay(ctx context.Context, ws, id string) (*stagesv1.Replay, error)
	AccountJourney(ctx context.Context, ws, jid, acct string) (*stagesv1.AccountJourney, error)
	ListAccounts(ctx context.Context, ws, jid string, f journey.AccountFilter, after []byte, size int) ([]*stagesv1.AccountSummary, []byte, bool, error)
	ListSignals(ctx context.Context, ws string, f journey.SignalFilter, after []byte, size int) ([]*commonv1.Signal, []byte, bool, error)
	Funnel(ctx context.Context, ws string, q *journey.FunnelQuery, parts bool) (*stagesv1.GetFunnelResponse, error)
	ListJourneys(ctx context.Context, ws string) ([]*stagesv1.JourneySummary, error)
	MomentsOfTruth(ctx context.Context, ws, cohort, segment string) (*stagesv1.GetMomentsOfTruthResponse, error)
	BuyingCommittee(ctx context.Context, ws, acct string) (*stagesv1.GetBuyingCommitteeResponse, error)
}

// Options configure a Server.
type Options struct {
	// App runs the use cases.
	App App
	// Log is the stages log served by Subscribe.
	Log *stream.Log
	// Lag reports the lag of the service's consumers, for GetStatus
	// (pkg/server.Lags.Lag); nil reports none.
	Lag func() []stream.Lag
}

// Server implements stagesv1.StagesServiceServer.
type Server struct {
	stagesv1.UnimplementedStagesServiceServer
	app App
	log *stream.Log
	lag func() []stream.Lag
}

// New returns a server.
func New(opts Options) (*Server, error) {
	if opts.App == nil || opts.Log == nil {
		return nil, errors.New("new stages server: App and Log are required")
	}
	return &Server{app: opts.App, log: opts.Log, lag: opts.Lag}, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { stagesv1.RegisterStagesServiceServer(g, s) }

// maxID bounds the ids and filters of requests; stricter than apierr.MaxID.
const maxID = 128

// checkID refuses an id that is missing (when required), longer than maxID,
// or that apierr.CheckID refuses.
func checkID(field, v string, required bool) error {
	if len(v) > maxID {
		return apierr.Field(field, "longer than %d characters", maxID)
	}
	return apierr.CheckID(field, v, required)
}

// checkVersion refuses a missing version.
func checkVersion(v uint32) error {
	if v == 0 {
		return apierr.Field("version", "required")
	}
	return nil
}

// checkCohort validates a "2026-03" cohort filter.
func checkCohort(c string) error {
	if c == "" {
		return nil
	}
	if _, err := time.Parse("2006-01", c); err != nil {
		return apierr.Field("cohort", "want a month such as \"2026-03\"")
	}
	return nil
}

// definitionOf reads a request's definition from the message or the YAML
// and validates it, reporting every problem.
func definitionOf(def *stagesv1.JourneyDefinition, yml string) (*stagesv1.JourneyDefinition, []*commonv1.ValidationError) {
	var errs []*commonv1.ValidationError
	switch {
	case def != nil:
		def = proto.Clone(def).(*stagesv1.JourneyDefinition)
	case strings.TrimSpace(yml) == "":
		return nil, []*commonv1.ValidationError{{Path: "definition", Message: "set definition or yaml"}}
	case len(yml) > journey.MaxYAMLBytes:
		return nil, []*commonv1.ValidationError{{Path: "yaml", Message: fmt.Sprintf("longer than %d bytes", journey.MaxYAMLBytes)}}
	default:
		def, errs = journey.ProtoFromYAML([]byte(yml))
	}
	if def != nil {
		errs = append(errs, journey.Validate(def)...)
	}
	return def, errs
}

// ValidateJourney compiles a definition without storing it.
func (s *Server) ValidateJourney(ctx context.Context, req *stagesv1.ValidateJourneyRequest) (*stagesv1.ValidateJourneyResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	_, errs := definitionOf(req.GetDefinition(), req.GetYaml())
	return &stagesv1.ValidateJourneyResponse{Valid: len(errs) == 0, Errors: errs}, nil
}

// ApplyJourney stores a new version, activating it when asked or when it is the first.
func (s *Server) ApplyJourney(ctx context.Context, req *stagesv1.ApplyJourneyRequest) (*stagesv1.ApplyJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	def, errs := definitionOf(req.GetDefinition(), req.GetYaml())
	if len(errs) > 0 {
		return nil, &journey.InvalidError{Errors: errs}
	}
	def, active, unchanged, err := s.app.ApplyJourney(ctx, ws, def, req.GetActivate())
	if err != nil {
		return nil, err
	}
	return &stagesv1.ApplyJourneyResponse{Definition: def, Active: active, Unchanged: unchanged}, nil
}

// GetJourney returns one version (default: the active one) with its YAML.
func (s *Server) GetJourney(ctx context.Context, req *stagesv1.GetJourneyRequest) (*stagesv1.GetJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), false); err != nil {
		return nil, err
	}
	def, active, err := s.app.GetJourney(ctx, ws, req.GetJourneyId(), req.GetVersion())
	if err != nil {
		return nil, journeyNotFound(err, req.GetJourneyId(), req.GetVersion())
	}
	yml, err := journey.ProtoYAML(def)
	if err != nil {
		return nil, err
	}
	return &stagesv1.GetJourneyResponse{Definition: def, Active: active, Yaml: yml}, nil
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
			return nil, apierr.Field("page.page_token", "malformed; pass next_page_token from the previous response unchanged")
		}
		before = uint32(after[0])<<24 | uint32(after[1])<<16 | uint32(after[2])<<8 | uint32(after[3])
	}
	defs, active, more, err := s.app.ListJourneyVersions(ctx, ws, req.GetJourneyId(), before, size)
	if err != nil {
		return nil, err
	}
	var last []byte
	if n := len(defs); n > 0 {
		v := defs[n-1].GetVersion()
		last = []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	return &stagesv1.ListJourneyVersionsResponse{Definitions: defs, ActiveVersion: active, Page: page.Response(last, more, -1)}, nil
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
		return nil, err
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
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), false); err != nil {
		return nil, err
	}
	aj, err := s.app.AccountJourney(ctx, ws, req.GetJourneyId(), req.GetAccountId())
	if err != nil {
		return nil, accountNotFound(err, req.GetJourneyId(), req.GetAccountId())
	}
	return &stagesv1.GetAccountJourneyResponse{Journey: aj}, nil
}

// ListAccounts lists accounts by stage, open signal, segment and owner.
func (s *Server) ListAccounts(ctx context.Context, req *stagesv1.ListAccountsRequest) (*stagesv1.ListAccountsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	f := journey.AccountFilter{Stage: req.GetStage(), Signal: req.GetSignal(), Segment: req.GetSegment(), Owner: req.GetOwner(), Milestones: req.GetMilestones()}
	for i, st := range req.GetStatus() {
		status := account.StatusOf(st)
		if status == "" {
			return nil, apierr.Field("status", "unknown account status %d at index %d; want one of ACCOUNT_STATUS_PROSPECT, _TRIAL, _CUSTOMER, _CHURNED, _WON_BACK", int32(st), i)
		}
		f.Statuses = append(f.Statuses, status)
	}
	for _, c := range []struct{ name, v string }{{"journey_id", req.GetJourneyId()}, {"stage", f.Stage}, {"signal", f.Signal}, {"segment", f.Segment}, {"owner", f.Owner}} {
		if err := checkID(c.name, c.v, false); err != nil {
			return nil, err
		}
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	accounts, last, more, err := s.app.ListAccounts(ctx, ws, req.GetJourneyId(), f, after, size)
	if err != nil {
		return nil, err
	}
	return &stagesv1.ListAccountsResponse{Accounts: accounts, Page: page.Response(last, more, -1)}, nil
}

// ListSignals lists drop-off signals.
func (s *Server) ListSignals(ctx context.Context, req *stagesv1.ListSignalsRequest) (*stagesv1.ListSignalsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), false); err != nil {
		return nil, err
	}
	if err := checkID("reason", req.GetReason(), false); err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	signals, last, more, err := s.app.ListSignals(ctx, ws, journey.SignalFilter{AccountID: req.GetAccountId(), State: req.GetState(), Reason: req.GetReason()}, after, size)
	if err != nil {
		return nil, err
	}
	return &stagesv1.ListSignalsResponse{Signals: signals, Page: page.Response(last, more, -1)}, nil
}

// GetFunnel reports per stage entered, converted, dropped, conversion and
// time in stage.
func (s *Server) GetFunnel(ctx context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	q, err := funnelQuery(req)
	if err != nil {
		return nil, err
	}
	resp, err := s.app.Funnel(ctx, ws, q, req.GetParts())
	if err != nil {
		return nil, journeyNotFound(err, req.GetJourneyId(), 0)
	}
	return resp, nil
}

// maxConversionWindowDays bounds GetFunnelRequest.conversion_window_days
// (ten years).
const maxConversionWindowDays = 3660

// funnelQuery validates a funnel request's filters.
func funnelQuery(req *stagesv1.GetFunnelRequest) (*journey.FunnelQuery, error) {
	if err := checkCohort(req.GetCohort()); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"journey_id", req.GetJourneyId()}, {"segment", req.GetSegment()}, {"plan", req.GetPlan()}, {"accounts_stage", req.GetAccountsStage()}} {
		if len(f.v) > maxID {
			return nil, apierr.Field(f.name, "longer than %d characters", maxID)
		}
	}
	q := &journey.FunnelQuery{
		Journey: req.GetJourneyId(), Cohort: req.GetCohort(), Segment: req.GetSegment(), Plan: req.GetPlan(),
		Breakdown: req.GetBreakdown(), Trend: req.GetTrend(),
		Figure: req.GetAccountsFigure(), FigureStage: req.GetAccountsStage(), FigureBucket: int(req.GetAccountsBucket()),
	}
	if w := req.GetWindow(); w != nil {
		if w.GetStart() != nil {
			if err := w.GetStart().CheckValid(); err != nil {
				return nil, apierr.Field("window.start", "not a valid time")
			}
			q.From = w.GetStart().AsTime()
		}
		if w.GetEnd() != nil {
			if err := w.GetEnd().CheckValid(); err != nil {
				return nil, apierr.Field("window.end", "not a valid time")
			}
			q.To = w.GetEnd().AsTime()
		}
		if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
			return nil, apierr.Field("window.end", "must be after window.start")
		}
	}
	if d := req.GetConversionWindowDays(); d < 0 || d > maxConversionWindowDays {
		return nil, apierr.Field("conversion_window_days", "want 0 (no window) to %d days", maxConversionWindowDays)
	}
	q.Window = time.Duration(req.GetConversionWindowDays()) * 24 * time.Hour
	if _, ok := stagesv1.FunnelBreakdown_name[int32(q.Breakdown)]; !ok {
		return nil, apierr.Field("breakdown", "unknown value %d", q.Breakdown)
	}
	if _, ok := stagesv1.FunnelInterval_name[int32(q.Trend)]; !ok {
		return nil, apierr.Field("trend", "unknown value %d", q.Trend)
	}
	if _, ok := stagesv1.FunnelFigure_name[int32(q.Figure)]; !ok {
		return nil, apierr.Field("accounts_figure", "unknown value %d", q.Figure)
	}
	stageFigure := q.Figure != stagesv1.FunnelFigure_FUNNEL_FIGURE_UNSPECIFIED &&
		q.Figure != stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_ENTERED && q.Figure != stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED
	switch {
	case stageFigure && q.FigureStage == "":
		return nil, apierr.Field("accounts_stage", "required with accounts_figure %s", q.Figure)
	case !stageFigure && q.FigureStage != "":
		return nil, apierr.Field("accounts_stage", "only with a stage's accounts_figure")
	case q.FigureBucket < 0 || q.FigureBucket > len(aggregate.ConvertBuckets):
		return nil, apierr.Field("accounts_bucket", "want 0 (any) to %d", len(aggregate.ConvertBuckets))
	case q.FigureBucket != 0 && q.Figure != stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED:
		return nil, apierr.Field("accounts_bucket", "only with accounts_figure converted")
	}
	return q, nil
}

// ListJourneys lists the workspace's journeys with an active version.
func (s *Server) ListJourneys(ctx context.Context, req *stagesv1.ListJourneysRequest) (*stagesv1.ListJourneysResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	js, err := s.app.ListJourneys(ctx, ws)
	if err != nil {
		return nil, err
	}
	return &stagesv1.ListJourneysResponse{Journeys: js}, nil
}

// GetMomentsOfTruth reports the share of contracted accounts reaching first
// login within 7 days and first value within 45 days.
func (s *Server) GetMomentsOfTruth(ctx context.Context, req *stagesv1.GetMomentsOfTruthRequest) (*stagesv1.GetMomentsOfTruthResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkCohort(req.GetCohort()); err != nil {
		return nil, err
	}
	return s.app.MomentsOfTruth(ctx, ws, req.GetCohort(), req.GetSegment())
}

// GetBuyingCommittee reports the personas engaged on an account and stuck
// signals of its buying process.
func (s *Server) GetBuyingCommittee(ctx context.Context, req *stagesv1.GetBuyingCommitteeRequest) (*stagesv1.GetBuyingCommitteeResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("account_id", req.GetAccountId(), true); err != nil {
		return nil, err
	}
	return s.app.BuyingCommittee(ctx, ws, req.GetAccountId())
}

// StartReplay replays the ingestion log from offset 0 up to what the live
// consumer has applied, evaluating one stored version into shadow state.
func (s *Server) StartReplay(ctx context.Context, req *stagesv1.StartReplayRequest) (*stagesv1.StartReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), true); err != nil {
		return nil, err
	}
	if err := checkVersion(req.GetVersion()); err != nil {
		return nil, err
	}
	if err := checkID("replay_id", req.GetReplayId(), false); err != nil {
		return nil, err
	}
	rp, err := s.app.StartReplay(ctx, ws, req.GetJourneyId(), req.GetVersion(), req.GetReplayId())
	if err != nil {
		return nil, err
	}
	return &stagesv1.StartReplayResponse{Replay: rp}, nil
}

// GetReplay reports a replay's progress.
func (s *Server) GetReplay(ctx context.Context, req *stagesv1.GetReplayRequest) (*stagesv1.GetReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("replay_id", req.GetReplayId(), true); err != nil {
		return nil, err
	}
	rp, err := s.app.GetReplay(ctx, ws, req.GetReplayId())
	if err != nil {
		return nil, err
	}
	return &stagesv1.GetReplayResponse{Replay: rp}, nil
}

// ActivateJourney switches the live version, making a finished replay of
// it live when there is one.
func (s *Server) ActivateJourney(ctx context.Context, req *stagesv1.ActivateJourneyRequest) (*stagesv1.ActivateJourneyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("journey_id", req.GetJourneyId(), true); err != nil {
		return nil, err
	}
	if err := checkVersion(req.GetVersion()); err != nil {
		return nil, err
	}
	def, err := s.app.ActivateJourney(ctx, ws, req.GetJourneyId(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &stagesv1.ActivateJourneyResponse{Definition: def}, nil
}

// Subscribe streams the stages log of one partition.
func (s *Server) Subscribe(req *stagesv1.SubscribeRequest, stream_ grpc.ServerStreamingServer[stagesv1.SubscribeResponse]) error {
	if req.GetPartition() >= s.log.Partitions() {
		return apierr.Field("partition", "must be below %d", s.log.Partitions())
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
	if stream_.Context().Err() != nil {
		return nil
	}
	return err
}
