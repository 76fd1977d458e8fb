package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/page"
	"github.com/cairn-dev/cairn/services/routing/config"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// Input bounds.
const (
	maxID       = 200
	maxText     = 1000
	maxList     = 1000
	maxAttrs    = 100
	maxPoolSize = 1000
)

const svc = "/cairn.routing.v1.RoutingService/"

// Policy is the minimum role per method: reads need RoleRead; Qualify,
// Handoff, RecordTouch, PauseSla and ResumeSla need RoleWrite (they are what
// CRM syncs and product backends call); the directory and the config need
// RoleAdmin; Subscribe is for internal peers (RoleService).
func Policy() auth.Policy {
	p := auth.Policy{}
	for _, m := range []string{"GetOwner", "ListOwners", "GetPool", "ListPools", "GetConfig", "ValidateConfig", "GetAssignment", "ListAssignments", "GetReport", "ListOwnerLoad"} {
		p[svc+m] = auth.RoleRead
	}
	for _, m := range []string{"Qualify", "Handoff", "RecordTouch", "PauseSla", "ResumeSla"} {
		p[svc+m] = auth.RoleWrite
	}
	for _, m := range []string{"UpsertOwner", "DeleteOwner", "UpsertPool", "DeletePool", "ApplyConfig"} {
		p[svc+m] = auth.RoleAdmin
	}
	p[svc+"Subscribe"] = auth.RoleService
	return p
}

// Server implements routingv1.RoutingServiceServer.
type Server struct {
	routingv1.UnimplementedRoutingServiceServer
	svc *Service
	sub Subscriber
}

// NewServer returns the gRPC server over a Service; sub serves Subscribe.
func NewServer(s *Service, sub Subscriber) *Server { return &Server{svc: s, sub: sub} }

// toStatus translates an error to a gRPC status once, at the edge.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var cfgErr *config.Error
	switch {
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.As(err, &cfgErr):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, page.ErrInvalidToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrState):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func checkID(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid("%s: required", field)
	case len(v) > maxID:
		return invalid("%s: longer than %d characters", field, maxID)
	case strings.ContainsRune(v, 0):
		return invalid("%s: contains NUL", field)
	}
	return nil
}

func checkText(field, v string) error {
	if len(v) > maxText {
		return invalid("%s: longer than %d characters", field, maxText)
	}
	return nil
}

func validOwner(o *routingv1.Owner, svc *Service) error {
	if o == nil {
		return invalid("owner: required")
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
		return invalid("owner.team: unknown value %d", o.GetTeam())
	}
	if o.GetCapacity() < 0 {
		return invalid("owner.capacity: must not be negative")
	}
	if o.GetWeight() < 0 {
		return invalid("owner.weight: must not be negative")
	}
	if len(o.GetTerritories()) > maxList || len(o.GetSegments()) > maxList || len(o.GetHolidays()) > maxList || len(o.GetWorkingHours()) > maxList {
		return invalid("owner: more than %d territories, segments, holidays or working hours", maxList)
	}
	if _, err := svc.Calendar(o); err != nil {
		if strings.Contains(err.Error(), "zone") {
			return invalid("owner.time_zone: %v", err)
		}
		return invalid("owner.%v", err)
	}
	return nil
}

// UpsertOwner stores an owner.
func (s *Server) UpsertOwner(ctx context.Context, req *routingv1.UpsertOwnerRequest) (*routingv1.UpsertOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := validOwner(req.GetOwner(), s.svc); err != nil {
		return nil, toStatus(err)
	}
	err = s.svc.Update(ws, func(tx *store.Tx) error {
		if err := s.svc.PutOwner(tx, req.GetOwner()); err != nil {
			return err
		}
		_, err := s.svc.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
	return &routingv1.UpsertOwnerResponse{Owner: req.GetOwner()}, toStatus(err)
}

// GetOwner returns one owner.
func (s *Server) GetOwner(ctx context.Context, req *routingv1.GetOwnerRequest) (*routingv1.GetOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("owner_id", req.GetOwnerId(), true); err != nil {
		return nil, toStatus(err)
	}
	var o *routingv1.Owner
	err = s.svc.View(ws, func(tx *store.Tx) error { o, err = tx.Owner(req.GetOwnerId()); return err })
	return &routingv1.GetOwnerResponse{Owner: o}, toStatus(err)
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
	resp := &routingv1.ListOwnersResponse{}
	err = s.svc.View(ws, func(tx *store.Tx) error {
		items, last, more, err := tx.ListOwners(store.Page{After: after, Size: size}, req.GetTeam())
		resp.Owners, resp.Page = items, page.Response(last, more, -1)
		return err
	})
	return resp, toStatus(err)
}

// DeleteOwner removes an owner. Its open assignments keep their owner id.
func (s *Server) DeleteOwner(ctx context.Context, req *routingv1.DeleteOwnerRequest) (*routingv1.DeleteOwnerResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("owner_id", req.GetOwnerId(), true); err != nil {
		return nil, toStatus(err)
	}
	err = s.svc.Update(ws, func(tx *store.Tx) error { return s.svc.DeleteOwner(tx, req.GetOwnerId()) })
	return &routingv1.DeleteOwnerResponse{}, toStatus(err)
}

// UpsertPool stores a pool.
func (s *Server) UpsertPool(ctx context.Context, req *routingv1.UpsertPoolRequest) (*routingv1.UpsertPoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	p := req.GetPool()
	if p == nil {
		return nil, toStatus(invalid("pool: required"))
	}
	if err := checkID("pool.pool_id", p.GetPoolId(), true); err != nil {
		return nil, toStatus(err)
	}
	if err := checkText("pool.name", p.GetName()); err != nil {
		return nil, toStatus(err)
	}
	if len(p.GetOwnerIds()) > maxPoolSize {
		return nil, toStatus(invalid("pool.owner_ids: more than %d owners", maxPoolSize))
	}
	for i, id := range p.GetOwnerIds() {
		if err := checkID(fmt.Sprintf("pool.owner_ids[%d]", i), id, true); err != nil {
			return nil, toStatus(err)
		}
	}
	if _, ok := routingv1.Strategy_name[int32(p.GetStrategy())]; !ok {
		return nil, toStatus(invalid("pool.strategy: unknown value %d", p.GetStrategy()))
	}
	err = s.svc.Update(ws, func(tx *store.Tx) error {
		if err := tx.PutPool(p); err != nil {
			return err
		}
		_, err := s.svc.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
	return &routingv1.UpsertPoolResponse{Pool: p}, toStatus(err)
}

// GetPool returns one pool.
func (s *Server) GetPool(ctx context.Context, req *routingv1.GetPoolRequest) (*routingv1.GetPoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("pool_id", req.GetPoolId(), true); err != nil {
		return nil, toStatus(err)
	}
	var p *routingv1.Pool
	err = s.svc.View(ws, func(tx *store.Tx) error { p, err = tx.Pool(req.GetPoolId()); return err })
	return &routingv1.GetPoolResponse{Pool: p}, toStatus(err)
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
	resp := &routingv1.ListPoolsResponse{}
	err = s.svc.View(ws, func(tx *store.Tx) error {
		items, last, more, err := tx.ListPools(store.Page{After: after, Size: size})
		resp.Pools, resp.Page = items, page.Response(last, more, -1)
		return err
	})
	return resp, toStatus(err)
}

// DeletePool removes a pool.
func (s *Server) DeletePool(ctx context.Context, req *routingv1.DeletePoolRequest) (*routingv1.DeletePoolResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("pool_id", req.GetPoolId(), true); err != nil {
		return nil, toStatus(err)
	}
	err = s.svc.Update(ws, func(tx *store.Tx) error { return tx.DeletePool(req.GetPoolId()) })
	return &routingv1.DeletePoolResponse{}, toStatus(err)
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
		return nil, invalid("yaml: set either config or yaml, not both")
	}
	c, owners, pools, err := config.Parse([]byte(yml))
	if err != nil {
		return nil, err
	}
	if len(owners) > 0 || len(pools) > 0 {
		return nil, invalid("yaml: owners and pools are loaded with UpsertOwner/UpsertPool (cairn apply does this), not ApplyConfig")
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
		return nil, toStatus(err)
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
	if err != nil {
		return nil, toStatus(err)
	}
	if _, errs := rules.Compile(cfg); len(errs) > 0 {
		return nil, status.Error(codes.InvalidArgument, (&config.Error{Problems: errs}).Error())
	}
	if err := checkConfigIDs(cfg); err != nil {
		return nil, toStatus(err)
	}
	cfg.CreatedAt = timestamppb.New(s.svc.clk.Now())
	err = s.svc.Update(ws, func(tx *store.Tx) error {
		if err := checkConfigPools(tx, cfg); err != nil {
			return err
		}
		if err := tx.PutConfig(cfg); err != nil {
			return err
		}
		_, err := s.svc.RerouteUnassigned(tx, rerouteOnDirectory)
		return err
	})
	return &routingv1.ApplyConfigResponse{Config: cfg}, toStatus(err)
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

// checkConfigPools refuses a config whose rules or fallback name a pool the
// workspace does not have: every handoff reaching that rule would otherwise
// end unassigned. Pools are applied before the config that uses them
// (cairn apply does so).
func checkConfigPools(tx *store.Tx, cfg *routingv1.Config) error {
	check := func(path, id string) error {
		if id == "" {
			return nil
		}
		if _, err := tx.Pool(id); errors.Is(err, ErrNotFound) {
			return invalid("%s: no pool %q in this workspace", path, id)
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

// GetConfig returns the active config, also as YAML.
func (s *Server) GetConfig(ctx context.Context, req *routingv1.GetConfigRequest) (*routingv1.GetConfigResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	var cfg *routingv1.Config
	err = s.svc.View(ws, func(tx *store.Tx) error { cfg, err = tx.Config(); return err })
	if err != nil {
		return nil, toStatus(err)
	}
	y, err := config.Format(cfg)
	return &routingv1.GetConfigResponse{Config: cfg, Yaml: string(y)}, toStatus(err)
}

func validLead(l *routingv1.Lead) error {
	if l == nil {
		return invalid("lead: required")
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
		return invalid("lead: one of lead_id, email or account_id is required")
	}
	if len(l.GetAttributes()) > maxAttrs {
		return invalid("lead.attributes: more than %d entries", maxAttrs)
	}
	for k, v := range l.GetAttributes() {
		if len(k) > maxID || len(v) > maxText {
			return invalid("lead.attributes[%q]: key or value too long", k)
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
		return nil, toStatus(invalid("type: must be MQL, PQL or SQL"))
	}
	if err := validLead(req.GetLead()); err != nil {
		return nil, toStatus(err)
	}
	if err := checkID("request_id", req.GetRequestId(), false); err != nil {
		return nil, toStatus(err)
	}
	var a *routingv1.Assignment
	err = s.svc.Commit(ctx, ws, func(tx *store.Tx) error {
		a, err = s.svc.RouteTx(tx, Route{Type: req.GetType(), Lead: req.GetLead(), RequestID: apiRequestID(req.GetRequestId())})
		return err
	})
	return &routingv1.QualifyResponse{Assignment: a}, toStatus(err)
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
			return nil, toStatus(invalid("owner_id: required for MANUAL handoffs"))
		}
	default:
		return nil, toStatus(invalid("type: must be CLOSED_WON, RENEWAL, RISK or MANUAL"))
	}
	for f, v := range map[string]string{"account_id": req.GetAccountId(), "owner_id": req.GetOwnerId(), "request_id": req.GetRequestId()} {
		if err := checkID(f, v, f == "account_id"); err != nil {
			return nil, toStatus(err)
		}
	}
	if err := checkText("reason", req.GetReason()); err != nil {
		return nil, toStatus(err)
	}
	var a *routingv1.Assignment
	err = s.svc.Commit(ctx, ws, func(tx *store.Tx) error {
		a, err = s.svc.RouteTx(tx, Route{
			Type: req.GetType(), AccountID: req.GetAccountId(), OwnerID: req.GetOwnerId(), Reason: req.GetReason(), RequestID: apiRequestID(req.GetRequestId()),
			Lead: &routingv1.Lead{AccountId: req.GetAccountId()},
		})
		return err
	})
	return &routingv1.HandoffResponse{Assignment: a}, toStatus(err)
}

// GetAssignment returns one assignment.
func (s *Server) GetAssignment(ctx context.Context, req *routingv1.GetAssignmentRequest) (*routingv1.GetAssignmentResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, toStatus(err)
	}
	var a *routingv1.Assignment
	err = s.svc.View(ws, func(tx *store.Tx) error { a, err = tx.Assignment(req.GetAssignmentId()); return err })
	return &routingv1.GetAssignmentResponse{Assignment: a}, toStatus(err)
}

// ListAssignments pages assignments by owner, state, type or account.
func (s *Server) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"owner_id": req.GetOwnerId(), "account_id": req.GetAccountId()} {
		if err := checkID(f, v, false); err != nil {
			return nil, toStatus(err)
		}
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	resp := &routingv1.ListAssignmentsResponse{}
	err = s.svc.View(ws, func(tx *store.Tx) error {
		items, last, more, err := tx.ListAssignments(store.Filter{OwnerID: req.GetOwnerId(), State: req.GetState(), Type: req.GetType(), AccountID: req.GetAccountId()}, store.Page{After: after, Size: size})
		resp.Assignments, resp.Page = items, page.Response(last, more, -1)
		return err
	})
	return resp, toStatus(err)
}

// RecordTouch records a touch that closes or advances an SLA.
func (s *Server) RecordTouch(ctx context.Context, req *routingv1.RecordTouchRequest) (*routingv1.RecordTouchResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, toStatus(err)
	}
	if err := checkID("touch_type", req.GetTouchType(), true); err != nil {
		return nil, toStatus(err)
	}
	at := s.svc.clk.Now()
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, toStatus(invalid("at: %v", err))
		}
		at = req.GetAt().AsTime()
	}
	var a *routingv1.Assignment
	err = s.svc.Commit(ctx, ws, func(tx *store.Tx) error {
		a, err = s.svc.TouchTx(tx, req.GetAssignmentId(), req.GetTouchType(), at)
		return err
	})
	return &routingv1.RecordTouchResponse{Assignment: a}, toStatus(err)
}

// PauseSla pauses an assignment's SLA clock.
func (s *Server) PauseSla(ctx context.Context, req *routingv1.PauseSlaRequest) (*routingv1.PauseSlaResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, toStatus(err)
	}
	if err := checkText("reason", req.GetReason()); err != nil {
		return nil, toStatus(err)
	}
	var a *routingv1.Assignment
	err = s.svc.Commit(ctx, ws, func(tx *store.Tx) error {
		a, err = s.svc.PauseTx(tx, req.GetAssignmentId(), req.GetReason())
		return err
	})
	return &routingv1.PauseSlaResponse{Assignment: a}, toStatus(err)
}

// ResumeSla resumes a paused SLA clock.
func (s *Server) ResumeSla(ctx context.Context, req *routingv1.ResumeSlaRequest) (*routingv1.ResumeSlaResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkID("assignment_id", req.GetAssignmentId(), true); err != nil {
		return nil, toStatus(err)
	}
	var a *routingv1.Assignment
	err = s.svc.Commit(ctx, ws, func(tx *store.Tx) error { a, err = s.svc.ResumeTx(tx, req.GetAssignmentId()); return err })
	return &routingv1.ResumeSlaResponse{Assignment: a}, toStatus(err)
}

// GetReport returns speed-to-lead (created to first touch) and SLA
// attainment (met / (met + breached)) by type, team and owner, for
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
			g.row.Breached++
			return
		}
		if a.GetSla().GetMetAt() != nil {
			g.row.Met++
		}
		if a.GetSla().GetBreached() || (by == "type" && len(a.GetPreviousOwnerIds()) > 0) {
			g.row.Breached++
		}
		if a.GetFirstTouchAt() != nil {
			g.speeds = append(g.speeds, a.GetFirstTouchAt().AsTime().Sub(a.GetCreatedAt().AsTime()))
		}
	}
	err = s.svc.View(ws, func(tx *store.Tx) error {
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
			for _, prev := range a.GetPreviousOwnerIds() {
				add("team", teamOf(prev), a, true)
				add("owner", prev, a, true)
			}
			return nil
		})
	})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &routingv1.GetReportResponse{}
	for _, g := range groups {
		if done := g.row.Met + g.row.Breached; done > 0 {
			g.row.Attainment = float64(g.row.Met) / float64(done)
		}
		if len(g.speeds) > 0 {
			slices.Sort(g.speeds)
			g.row.MedianSpeedToLead = durationpb.New(percentile(g.speeds, 50))
			g.row.P90SpeedToLead = durationpb.New(percentile(g.speeds, 90))
		}
		resp.Rows = append(resp.Rows, g.row)
	}
	sort.Slice(resp.Rows, func(i, j int) bool {
		a, b := resp.Rows[i], resp.Rows[j]
		if a.GetGroupBy() != b.GetGroupBy() {
			return a.GetGroupBy() > b.GetGroupBy() // type, team, owner
		}
		return a.GetKey() < b.GetKey()
	})
	return resp, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank-1, 0)]
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
	resp := &routingv1.ListOwnerLoadResponse{}
	err = s.svc.View(ws, func(tx *store.Tx) error {
		owners, last, more, err := tx.ListOwners(store.Page{After: after, Size: size}, routingv1.Team_TEAM_UNSPECIFIED)
		for _, o := range owners {
			open, breached := tx.Load(o.GetOwnerId())
			resp.Owners = append(resp.Owners, &routingv1.OwnerLoad{
				OwnerId: o.GetOwnerId(), Name: o.GetName(), Team: o.GetTeam(), Open: int32(open), Capacity: o.GetCapacity(), Breached: int32(breached),
			})
		}
		resp.Page = page.Response(last, more, -1)
		return err
	})
	return resp, toStatus(err)
}

// Subscriber serves one partition of the routing log from an offset: it
// catches up, then tails, calling send with records whose offset and
// partition are filled in, until ctx ends or send fails.
type Subscriber func(ctx context.Context, partition uint32, from uint64, send func(recs []*routingv1.LogRecord, head uint64) error) error

// Subscribe streams the routing log.
func (s *Server) Subscribe(req *routingv1.SubscribeRequest, stream routingv1.RoutingService_SubscribeServer) error {
	if req.GetPartition() >= s.svc.parts {
		return status.Errorf(codes.InvalidArgument, "partition: %d is not below the partition count %d", req.GetPartition(), s.svc.parts)
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

// apiRequestID namespaces client idempotency keys apart from the keys the
// consumers derive from upstream records ("ingestion:<message id>", ...).
func apiRequestID(id string) string {
	if id == "" {
		return ""
	}
	return "api:" + id
}
