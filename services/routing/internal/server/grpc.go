// Package server is the routing service's gRPC edge: it decodes and
// validates cairn.routing.v1 requests (field errors through apierr) and
// calls the application (App, implemented by internal/app), whose errors it
// returns as they are: pkg/server's interceptor maps them to statuses once.
package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/hours"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/config"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
)

// Input bounds. MaxID is stricter than apierr.MaxID; MaxText and MaxAttrs
// also bound the leads the consumers build from upstream events.
const (
	MaxID       = 200
	MaxText     = 1000
	maxList     = 1000
	MaxAttrs    = 100
	maxPoolSize = 1000
)

const svc = "/cairn.routing.v1.RoutingService/"

// Policy is the minimum role of every method (pkg/methods, the one table
// of each method's role, REST route and gateway routing).
func Policy() auth.Policy { return methods.Policy(methods.Routing) }

// App is the routing application the server calls (internal/app's
// Service): the use cases of the API, each in its own transaction, with
// validated input. Their errors are apierr errors or unexpected ones.
type App interface {
	// Now is the service clock's time.
	Now() time.Time
	// Partitions is the routing log's partition count.
	Partitions() uint32
	// Calendar builds an owner's business-hours calendar; its error names
	// the bad field (e.g. "working_hours[0]: ...") or the time zone.
	Calendar(o *routingv1.Owner) (*hours.Calendar, error)

	UpsertOwner(ws string, o *routingv1.Owner) error
	GetOwner(ws, id string) (*routingv1.Owner, error)
	ListOwners(ws string, team routingv1.Team, after []byte, size int) ([]*routingv1.Owner, []byte, bool, error)
	DeleteOwner(ws, id string) error
	UpsertPool(ws string, p *routingv1.Pool) error
	GetPool(ws, id string) (*routingv1.Pool, error)
	ListPools(ws string, after []byte, size int) ([]*routingv1.Pool, []byte, bool, error)
	DeletePool(ws, id string) error
	// ApplyConfig stores a compiled config as the next version.
	ApplyConfig(ws string, cfg *routingv1.Config) (_ *routingv1.Config, unchanged bool, err error)
	GetConfig(ws string) (*routingv1.Config, error)

	Qualify(ctx context.Context, ws string, t routingv1.HandoffType, lead *routingv1.Lead, requestID string) (*routingv1.Assignment, error)
	Handoff(ctx context.Context, ws string, t routingv1.HandoffType, accountID, ownerID, reason, requestID string) (*routingv1.Assignment, error)
	GetAssignment(ws, id string) (*routingv1.Assignment, error)
	ListAssignments(ws string, req *routingv1.ListAssignmentsRequest, after []byte, size int) ([]*routingv1.Assignment, []byte, bool, error)
	RecordTouch(ctx context.Context, ws, id, touch string, at time.Time) (*routingv1.Assignment, error)
	PauseSla(ctx context.Context, ws, id, reason string) (*routingv1.Assignment, error)
	ResumeSla(ctx context.Context, ws, id string) (*routingv1.Assignment, error)
	Reassign(ctx context.Context, ws, id, ownerID, reason string) (*routingv1.Assignment, error)
	Report(ws string, from, to time.Time) ([]*routingv1.Attainment, error)
	OwnerLoad(ws string, after []byte, size int) ([]*routingv1.OwnerLoad, []byte, bool, error)
	// GetAccountFit explains what the PQL rules see for an account; an
	// account routing never heard of is apierr.ErrNotFound.
	GetAccountFit(ws, accountID string) (*routingv1.AccountFit, error)
}

// Server implements routingv1.RoutingServiceServer.
type Server struct {
	routingv1.UnimplementedRoutingServiceServer
	app App
	sub Subscriber
	lag func() []stream.Lag
}

// NewServer returns the gRPC server over an App; sub serves Subscribe, and
// lag reports the lag of the service's consumers for GetStatus
// (pkg/server.Lags.Lag; nil reports none).
func NewServer(a App, sub Subscriber, lag func() []stream.Lag) *Server {
	return &Server{app: a, sub: sub, lag: lag}
}

// checkID refuses what apierr.CheckID refuses, and ids longer than MaxID.
func checkID(field, v string, required bool) error {
	if len(v) > MaxID {
		return apierr.Field(field, "longer than %d characters", MaxID)
	}
	return apierr.CheckID(field, v, required)
}

func checkText(field, v string) error {
	if len(v) > MaxText {
		return apierr.Field(field, "longer than %d characters", MaxText)
	}
	return nil
}

func validOwner(o *routingv1.Owner, app App) error {
	if o == nil {
		return apierr.Field("owner", "required")
	}
	if err := checkID("owner.owner_id", o.GetOwnerId(), true); err != nil {
		return err
	}
	for f, v := range map[string]string{"owner.name": o.GetName(), "owner.email": o.GetEmail(), "owner.manager_id": o.GetManagerId()} {
		if err := checkText(f, v); err != nil {
			return err
		}
	}
	if _, ok := routingv1.Team_name[int32(o.GetTeam())]; !ok {
		return apierr.Field("owner.team", "unknown value %d", o.GetTeam())
	}
	if o.GetCapacity() < 0 {
		return apierr.Field("owner.capacity", "must not be negative")
	}
	if o.GetWeight() < 0 {
		return apierr.Field("owner.weight", "must not be negative")
	}
	if len(o.GetTerritories()) > maxList || len(o.GetSegments()) > maxList || len(o.GetHolidays()) > maxList || len(o.GetWorkingHours()) > maxList {
		return apierr.Field("owner", "more than %d territories, segments, holidays or working hours", maxList)
	}
	if _, err := app.Calendar(o); err != nil {
		if strings.Contains(err.Error(), "zone") {
			return apierr.Field("owner.time_zone", "%v", err)
		}
		// The calendar's errors read "path: problem".
		path, problem, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			return apierr.Field("owner", "%v", err)
		}
		return apierr.Field("owner."+path, "%s", problem)
	}
	return nil
}

// UpsertOwner stores an owner.
func (s *Server) UpsertOwner(ctx context.Context, req *routingv1.UpsertOwnerRequest) (*routingv1.UpsertOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := validOwner(req.GetOwner(), s.app); err != nil {
		return nil, err
	}
	if err := s.app.UpsertOwner(ws, req.GetOwner()); err != nil {
		return nil, err
	}
	return &routingv1.UpsertOwnerResponse{Owner: req.GetOwner()}, nil
}

// GetOwner returns one owner.
func (s *Server) GetOwner(ctx context.Context, req *routingv1.GetOwnerRequest) (*routingv1.GetOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("owner_id", req.GetOwnerId(), true); err != nil {
		return nil, err
	}
	o, err := s.app.GetOwner(ws, req.GetOwnerId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetOwnerResponse{Owner: o}, nil
}

// ListOwners pages owners.
func (s *Server) ListOwners(ctx context.Context, req *routingv1.ListOwnersRequest) (*routingv1.ListOwnersResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListOwners(ws, req.GetTeam(), after, size)
	if err != nil {
		return nil, err
	}
	return &routingv1.ListOwnersResponse{Owners: items, Page: page.Response(last, more, -1)}, nil
}

// DeleteOwner removes an owner. Its open assignments keep their owner id.
func (s *Server) DeleteOwner(ctx context.Context, req *routingv1.DeleteOwnerRequest) (*routingv1.DeleteOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("owner_id", req.GetOwnerId(), true); err != nil {
		return nil, err
	}
	if err := s.app.DeleteOwner(ws, req.GetOwnerId()); err != nil {
		return nil, err
	}
	return &routingv1.DeleteOwnerResponse{}, nil
}

// UpsertPool stores a pool.
func (s *Server) UpsertPool(ctx context.Context, req *routingv1.UpsertPoolRequest) (*routingv1.UpsertPoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	p := req.GetPool()
	if p == nil {
		return nil, apierr.Field("pool", "required")
	}
	if err := checkID("pool.pool_id", p.GetPoolId(), true); err != nil {
		return nil, err
	}
	if err := checkText("pool.name", p.GetName()); err != nil {
		return nil, err
	}
	if len(p.GetOwnerIds()) > maxPoolSize {
		return nil, apierr.Field("pool.owner_ids", "more than %d owners", maxPoolSize)
	}
	for i, id := range p.GetOwnerIds() {
		if err := checkID(fmt.Sprintf("pool.owner_ids[%d]", i), id, true); err != nil {
			return nil, err
		}
	}
	if _, ok := routingv1.Strategy_name[int32(p.GetStrategy())]; !ok {
		return nil, apierr.Field("pool.strategy", "unknown value %d", p.GetStrategy())
	}
	if err := s.app.UpsertPool(ws, p); err != nil {
		return nil, err
	}
	return &routingv1.UpsertPoolResponse{Pool: p}, nil
}

// GetPool returns one pool.
func (s *Server) GetPool(ctx context.Context, req *routingv1.GetPoolRequest) (*routingv1.GetPoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("pool_id", req.GetPoolId(), true); err != nil {
		return nil, err
	}
	p, err := s.app.GetPool(ws, req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetPoolResponse{Pool: p}, nil
}

// ListPools pages pools.
func (s *Server) ListPools(ctx context.Context, req *routingv1.ListPoolsRequest) (*routingv1.ListPoolsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListPools(ws, after, size)
	if err != nil {
		return nil, err
	}
	return &routingv1.ListPoolsResponse{Pools: items, Page: page.Response(last, more, -1)}, nil
}

// DeletePool removes a pool.
func (s *Server) DeletePool(ctx context.Context, req *routingv1.DeletePoolRequest) (*routingv1.DeletePoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("pool_id", req.GetPoolId(), true); err != nil {
		return nil, err
	}
	if err := s.app.DeletePool(ws, req.GetPoolId()); err != nil {
		return nil, err
	}
	return &routingv1.DeletePoolResponse{}, nil
}

// problems returns a config's problems as a field error: each problem's
// path is its field, field when it has none (a YAML file that does not
// decode).
func problems(field string, probs []*commonv1.ValidationError) error {
	vs := make([]apierr.Violation, 0, len(probs))
	for _, p := range probs {
		path := p.GetPath()
		if path == "" {
			path = field
		}
		vs = append(vs, apierr.Violation{Field: path, Description: p.GetMessage()})
	}
	return apierr.Fields("", vs)
}

// configOf takes the config from the message or, when set, the YAML.
func configOf(cfg *routingv1.Config, yml string) (*routingv1.Config, error) {
	if yml == "" {
		if cfg == nil {
			return &routingv1.Config{}, nil
		}
		return cfg, nil
	}
	if cfg != nil {
		return nil, apierr.Field("yaml", "set either config or yaml, not both")
	}
	c, owners, pools, err := config.Parse([]byte(yml))
	if err != nil {
		return nil, err
	}
	if len(owners) > 0 || len(pools) > 0 {
		return nil, apierr.Field("yaml", "owners and pools are loaded with UpsertOwner/UpsertPool (cairn apply does this), not ApplyConfig")
	}
	return c, nil
}

// ValidateConfig compiles a config without storing it.
func (s *Server) ValidateConfig(ctx context.Context, req *routingv1.ValidateConfigRequest) (*routingv1.ValidateConfigResponse, error) {
	if _, err := auth.Workspace(ctx, req.GetWorkspace()); err != nil {
		return nil, err
	}
	cfg, err := configOf(req.GetConfig(), req.GetYaml())
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		return &routingv1.ValidateConfigResponse{Errors: cfgErr.Problems}, nil
	}
	if err != nil {
		return nil, err
	}
	_, errs := rules.Compile(cfg)
	return &routingv1.ValidateConfigResponse{Valid: len(errs) == 0, Errors: errs}, nil
}

// ApplyConfig stores a new config version after compiling it.
func (s *Server) ApplyConfig(ctx context.Context, req *routingv1.ApplyConfigRequest) (*routingv1.ApplyConfigResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	cfg, err := configOf(req.GetConfig(), req.GetYaml())
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		return nil, problems("yaml", cfgErr.Problems)
	}
	if err != nil {
		return nil, err
	}
	if _, errs := rules.Compile(cfg); len(errs) > 0 {
		return nil, problems("config", errs)
	}
	if err := checkConfigIDs(cfg); err != nil {
		return nil, err
	}
	cfg, unchanged, err := s.app.ApplyConfig(ws, cfg)
	if err != nil {
		return nil, err
	}
	return &routingv1.ApplyConfigResponse{Config: cfg, Unchanged: unchanged}, nil
}

// checkConfigIDs bounds the ids and names a config stores and shows back:
// no NUL, no longer than any other id.
func checkConfigIDs(cfg *routingv1.Config) error {
	if err := checkID("fallback_pool_id", cfg.GetFallbackPoolId(), false); err != nil {
		return err
	}
	for i, r := range cfg.GetRules() {
		path := fmt.Sprintf("rules[%d]", i)
		for f, v := range map[string]string{".name": r.GetName(), ".pool_id": r.GetPoolId(), ".owner_id": r.GetOwnerId()} {
			if err := checkID(path+f, v, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// GetConfig returns the active config, also as YAML.
func (s *Server) GetConfig(ctx context.Context, req *routingv1.GetConfigRequest) (*routingv1.GetConfigResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	cfg, err := s.app.GetConfig(ws)
	if err != nil {
		return nil, err
	}
	y, err := config.Format(cfg)
	if err != nil {
		return nil, err
	}
	return &routingv1.GetConfigResponse{Config: cfg, Yaml: string(y)}, nil
}

func validLead(l *routingv1.Lead) error {
	if l == nil {
		return apierr.Field("lead", "required")
	}
	for f, v := range map[string]string{"lead.lead_id": l.GetLeadId(), "lead.account_id": l.GetAccountId()} {
		if err := checkID(f, v, false); err != nil {
			return err
		}
	}
	for f, v := range map[string]string{"lead.email": l.GetEmail(), "lead.name": l.GetName(), "lead.segment": l.GetSegment(), "lead.territory": l.GetTerritory()} {
		if err := checkText(f, v); err != nil {
			return err
		}
	}
	if l.GetLeadId() == "" && l.GetEmail() == "" && l.GetAccountId() == "" {
		return apierr.Field("lead", "one of lead_id, email or account_id is required")
	}
	if len(l.GetAttributes()) > MaxAttrs {
		return apierr.Field("lead.attributes", "more than %d entries", MaxAttrs)
	}
	for k, v := range l.GetAttributes() {
		if len(k) > MaxID || len(v) > MaxText {
			return apierr.Field(fmt.Sprintf("lead.attributes[%q]", k), "key or value too long")
		}
	}
	return nil
}

// Qualify routes an MQL, PQL or SQL.
func (s *Server) Qualify(ctx context.Context, req *routingv1.QualifyRequest) (*routingv1.QualifyResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	switch req.GetType() {
	case routingv1.HandoffType_HANDOFF_TYPE_MQL, routingv1.HandoffType_HANDOFF_TYPE_PQL, routingv1.HandoffType_HANDOFF_TYPE_SQL:
	default:
		return nil, apierr.Field("type", "must be MQL, PQL or SQL")
	}
	if err := validLead(req.GetLead()); err != nil {
		return nil, err
	}
	if err := checkID("request_id", req.GetRequestId(), false); err != nil {
		return nil, err
	}
	a, err := s.app.Qualify(ctx, ws, req.GetType(), req.GetLead(), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &routingv1.QualifyResponse{Assignment: a}, nil
}

// Handoff routes a post-sale or manual handoff.
func (s *Server) Handoff(ctx context.Context, req *routingv1.HandoffRequest) (*routingv1.HandoffResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	switch req.GetType() {
	case routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, routingv1.HandoffType_HANDOFF_TYPE_RISK:
	case routingv1.HandoffType_HANDOFF_TYPE_MANUAL:
		if req.GetOwnerId() == "" {
			return nil, apierr.Field("owner_id", "required for MANUAL handoffs")
		}
	default:
		return nil, apierr.Field("type", "must be CLOSED_WON, RENEWAL, RISK or MANUAL")
	}
	for f, v := range map[string]string{"account_id": req.GetAccountId(), "owner_id": req.GetOwnerId(), "request_id": req.GetRequestId()} {
		if err := checkID(f, v, f == "account_id"); err != nil {
			return nil, err
		}
	}
	if err := checkText("reason", req.GetReason()); err != nil {
		return nil, err
	}
	a, err := s.app.Handoff(ctx, ws, req.GetType(), req.GetAccountId(), req.GetOwnerId(), req.GetReason(), req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &routingv1.HandoffResponse{Assignment: a}, nil
}

// GetAssignment returns one assignment.
func (s *Server) GetAssignment(ctx context.Context, req *routingv1.GetAssignmentRequest) (*routingv1.GetAssignmentResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, err
	}
	a, err := s.app.GetAssignment(ws, req.GetAssignmentId())
	if err != nil {
		return nil, err
	}
	return &routingv1.GetAssignmentResponse{Assignment: a}, nil
}

// ListAssignments pages assignments by owner, state, type or account, or
// the open queue (open_queue) by due time.
func (s *Server) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"owner_id": req.GetOwnerId(), "account_id": req.GetAccountId()} {
		if err := checkID(f, v, false); err != nil {
			return nil, err
		}
	}
	if req.GetOpenQueue() && req.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED {
		return nil, apierr.Field("state", "must be unset with open_queue (the open queue is OPEN and untouched BREACHED work)")
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListAssignments(ws, req, after, size)
	if err != nil {
		return nil, err
	}
	return &routingv1.ListAssignmentsResponse{Assignments: items, Page: page.Response(last, more, -1)}, nil
}

// RecordTouch records a touch that closes or advances an SLA.
func (s *Server) RecordTouch(ctx context.Context, req *routingv1.RecordTouchRequest) (*routingv1.RecordTouchResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, err
	}
	if err := checkID("touch_type", req.GetTouchType(), true); err != nil {
		return nil, err
	}
	at := s.app.Now()
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, apierr.Field("at", "%v", err)
		}
		at = req.GetAt().AsTime()
	}
	a, err := s.app.RecordTouch(ctx, ws, req.GetAssignmentId(), req.GetTouchType(), at)
	if err != nil {
		return nil, err
	}
	return &routingv1.RecordTouchResponse{Assignment: a}, nil
}

// PauseSla pauses an assignment's SLA clock.
func (s *Server) PauseSla(ctx context.Context, req *routingv1.PauseSlaRequest) (*routingv1.PauseSlaResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason()); err != nil {
		return nil, err
	}
	a, err := s.app.PauseSla(ctx, ws, req.GetAssignmentId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &routingv1.PauseSlaResponse{Assignment: a}, nil
}

// ResumeSla resumes a paused SLA clock.
func (s *Server) ResumeSla(ctx context.Context, req *routingv1.ResumeSlaRequest) (*routingv1.ResumeSlaResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, err
	}
	a, err := s.app.ResumeSla(ctx, ws, req.GetAssignmentId())
	if err != nil {
		return nil, err
	}
	return &routingv1.ResumeSlaResponse{Assignment: a}, nil
}

// Reassign moves an open assignment to another owner by hand.
func (s *Server) Reassign(ctx context.Context, req *routingv1.ReassignRequest) (*routingv1.ReassignResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, err
	}
	if err := checkID("owner_id", req.GetOwnerId(), true); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason()); err != nil {
		return nil, err
	}
	a, err := s.app.Reassign(ctx, ws, req.GetAssignmentId(), req.GetOwnerId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &routingv1.ReassignResponse{Assignment: a}, nil
}

// GetReport returns speed-to-lead (created to first touch) and SLA
// attainment (met on time / (met on time + met late + breached untouched))
// by type, team and owner, for
// assignments created in the window.
func (s *Server) GetReport(ctx context.Context, req *routingv1.GetReportRequest) (*routingv1.GetReportResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	var from, to time.Time
	if w := req.GetWindow(); w != nil {
		if w.GetStart() != nil {
			from = w.GetStart().AsTime()
		}
		if w.GetEnd() != nil {
			to = w.GetEnd().AsTime()
		}
	}
	rows, err := s.app.Report(ws, from, to)
	if err != nil {
		return nil, err
	}
	return &routingv1.GetReportResponse{Rows: rows}, nil
}

// ListOwnerLoad pages owners with their open and breached counts.
func (s *Server) ListOwnerLoad(ctx context.Context, req *routingv1.ListOwnerLoadRequest) (*routingv1.ListOwnerLoadResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	owners, last, more, err := s.app.OwnerLoad(ws, after, size)
	if err != nil {
		return nil, err
	}
	return &routingv1.ListOwnerLoadResponse{Owners: owners, Page: page.Response(last, more, -1)}, nil
}

// Subscriber serves one partition of the routing log from an offset: it
// catches up, then tails, calling send with records whose offset and
// partition are filled in, until ctx ends or send fails.
type Subscriber func(ctx context.Context, partition uint32, from uint64, send func(recs []*routingv1.LogRecord, head uint64) error) error

// Subscribe streams the routing log.
func (s *Server) Subscribe(req *routingv1.SubscribeRequest, stream routingv1.RoutingService_SubscribeServer) error {
	if parts := s.app.Partitions(); req.GetPartition() >= parts {
		return apierr.Field("partition", "%d is not below the partition count %d", req.GetPartition(), parts)
	}
	if s.sub == nil {
		return status.Error(codes.Unimplemented, "routing log not served by this process")
	}
	err := s.sub(stream.Context(), req.GetPartition(), req.GetFromOffset(), func(recs []*routingv1.LogRecord, head uint64) error {
		return stream.Send(&routingv1.SubscribeResponse{Records: recs, HeadOffset: head})
	})
	if err != nil && stream.Context().Err() != nil {
		return nil
	}
	return err
}
