// Package app is the routing service's application: the use cases behind
// the cairn.routing.v1 API (usecases.go, called by internal/server), the
// durable SLA timer loop, the consumers of the ingestion, stages and health
// logs, and the process wiring (Parse, Run). It owns the transactions: every
// state change (assignment, SLA state, timer, cursor, routing log record)
// commits in one, through the typed store of internal/store.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/hours"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// Appender appends a record to the routing log inside the caller's write
// transaction; *stream.Log implements it.
type Appender interface {
	AppendTx(tx *pstore.Tx, partition uint32, data []byte) (uint64, error)
}

// Options configure a Service.
type Options struct {
	// DB is the routing bbolt file.
	DB *pstore.DB
	// Log is the routing log (assignments and SLA events).
	Log Appender
	// Partitions is the number of log partitions.
	Partitions uint32
	// Clock drives decisions, SLA clocks and timers.
	Clock clock.Clock
	// Logger receives operational logs.
	Logger *slog.Logger
	// Registerer receives cairn_sla_breaches_total and
	// cairn_routing_decision_seconds; nil skips registration.
	Registerer prometheus.Registerer
	// TimerBatch is how many due timers fire per transaction (default 10000): larger batches share one commit and fsync.
	TimerBatch int
}

// Service is routing's state machine over its store; the gRPC server and the
// consumers call it.
type Service struct {
	db       *pstore.DB
	log      Appender
	parts    uint32
	clk      clock.Clock
	logger   *slog.Logger
	batch    int
	wake     chan struct{}
	breaches *prometheus.CounterVec
	decision prometheus.Histogram

	// AfterFire, when set, is called after each committed batch of fired
	// timers with the total fired by this Service; only fault-injection
	// tests use it.
	AfterFire func(total int)
	fired     int

	// horizon is the ingestion consumers' event-time horizon: it holds
	// timers back while touches may still be waiting in the log
	// (fireHorizon).
	horizonMu sync.Mutex
	horizon   stream.Horizon

	mu      sync.Mutex
	engines map[string]engineEntry
	zones   hours.Zones
	// owners caches owners with their calendars by workspace and id. It is
	// filled and invalidated only inside write transactions, which bbolt
	// serializes, so it never holds a version older than the last commit.
	owners map[string]map[string]*rules.Owner
	// aggs keeps the aggregates the ingestion consumer wrote last, decoded
	// (store.AggregateCache).
	aggs *store.AggregateCache
}

// aggregateCacheBytes bounds the aggregate cache by the encoded size of
// what it holds: a thousand busy accounts fit.
const aggregateCacheBytes = 8 << 20

type engineEntry struct {
	version uint32
	cfg     *routingv1.Config
	engine  *rules.Engine
}

// New builds a Service.
func New(opts Options) (*Service, error) {
	if opts.DB == nil || opts.Log == nil {
		return nil, errors.New("routing service: DB and Log are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.TimerBatch <= 0 {
		opts.TimerBatch = 10000
	}
	s := &Service{
		db: opts.DB, log: opts.Log, parts: opts.Partitions, clk: opts.Clock, logger: opts.Logger, batch: opts.TimerBatch,
		wake:    make(chan struct{}, 1),
		engines: map[string]engineEntry{},
		owners:  map[string]map[string]*rules.Owner{},
		aggs:    store.NewAggregateCache(aggregateCacheBytes),
		breaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_sla_breaches_total", Help: "SLA breaches by handoff type.",
		}, []string{"type"}),
		decision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_routing_decision_seconds", Help: "Time to route one handoff (rules, candidates, store).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.breaches, s.decision} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register routing metrics: %w", err)
			}
		}
	}
	return s, nil
}

// notify wakes the timer loop after a commit that armed a timer.
func (s *Service) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Calendar builds an owner's business-hours calendar.
func (s *Service) Calendar(o *routingv1.Owner) (*hours.Calendar, error) {
	return hours.ForOwner(o, s.zones.Load)
}

// utcCalendar is used for clocks whose owner is gone: plain default hours.
func utcCalendar() *hours.Calendar {
	c, _ := hours.New(time.UTC, nil, nil, nil)
	return c
}

func (s *Service) ownerCalendar(tx *store.Tx, ownerID string) *hours.Calendar {
	if o := s.owner(tx, ownerID); o != nil {
		return o.Calendar
	}
	return utcCalendar()
}

// engine returns the compiled active config of a workspace (an empty config
// when none was applied), cached by version.
func (s *Service) engine(tx *store.Tx) (*routingv1.Config, *rules.Engine, error) {
	version := tx.ConfigVersion()
	s.mu.Lock()
	e, ok := s.engines[tx.Workspace()]
	s.mu.Unlock()
	if ok && e.version == version && e.engine != nil {
		return e.cfg, e.engine, nil
	}
	cfg, err := tx.Config()
	if errors.Is(err, store.ErrNotFound) {
		cfg = &routingv1.Config{}
	} else if err != nil {
		return nil, nil, err
	}
	eng, errs := rules.Compile(cfg)
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("compile stored config v%d: %s: %s", cfg.GetVersion(), errs[0].GetPath(), errs[0].GetMessage())
	}
	s.mu.Lock()
	s.engines[tx.Workspace()] = engineEntry{version: cfg.GetVersion(), cfg: cfg, engine: eng}
	s.mu.Unlock()
	return cfg, eng, nil
}

// directory adapts a store transaction to rules.Directory.
type directory struct {
	s      *Service
	tx     *store.Tx
	owners map[string]*rules.Owner
}

// Owner implements rules.Directory. Write transactions go through the
// service's owner cache; read transactions, which cannot fill it, memoize
// in d.owners (a weighted pool asks for every member on each decision).
func (d *directory) Owner(id string) (*rules.Owner, bool) {
	if d.tx.Writable() {
		ro := d.s.owner(d.tx, id)
		return ro, ro != nil
	}
	if o, ok := d.owners[id]; ok {
		return o, o != nil
	}
	ro := d.s.owner(d.tx, id)
	if d.owners == nil {
		d.owners = map[string]*rules.Owner{}
	}
	d.owners[id] = ro
	return ro, ro != nil
}

// owner loads an owner with its calendar, through the cache in write
// transactions; nil when missing or its calendar is invalid.
func (s *Service) owner(tx *store.Tx, id string) *rules.Owner {
	writable := tx.Writable()
	if writable {
		s.mu.Lock()
		ro, ok := s.owners[tx.Workspace()][id]
		s.mu.Unlock()
		if ok {
			return ro
		}
	}
	o, err := tx.Owner(id)
	if err != nil {
		return nil
	}
	cal, err := s.Calendar(o)
	if err != nil {
		s.logger.Warn("owner calendar invalid; treating owner as unknown", "owner", id, "err", err)
		return nil
	}
	ro := &rules.Owner{Owner: o, Calendar: cal}
	if writable {
		s.mu.Lock()
		ws := s.owners[tx.Workspace()]
		if ws == nil {
			ws = map[string]*rules.Owner{}
			s.owners[tx.Workspace()] = ws
		}
		ws[id] = ro
		s.mu.Unlock()
	}
	return ro
}

// PutOwner stores an owner and drops its cached copy, in tx.
func (s *Service) PutOwner(tx *store.Tx, o *routingv1.Owner) error {
	s.forgetOwner(tx, o.GetOwnerId())
	return tx.PutOwner(o)
}

// deleteOwner deletes an owner and drops its cached copy, in tx.
func (s *Service) deleteOwner(tx *store.Tx, id string) error {
	s.forgetOwner(tx, id)
	return tx.DeleteOwner(id)
}

func (s *Service) forgetOwner(tx *store.Tx, id string) {
	s.mu.Lock()
	delete(s.owners[tx.Workspace()], id)
	s.mu.Unlock()
}

// Pool implements rules.Directory.
func (d *directory) Pool(id string) (*routingv1.Pool, bool) {
	p, err := d.tx.Pool(id)
	return p, err == nil
}

// Load implements rules.Directory.
func (d *directory) Load(id string) int { open, _ := d.tx.Load(id); return open }

// Cursor implements rules.Directory.
func (d *directory) Cursor(id string) uint64 { return d.tx.Cursor(id) }

// AccountOwner implements rules.Directory: by account id, else by the
// account that owns the email domain.
func (d *directory) AccountOwner(accountID, domain string, team routingv1.Team) (string, bool) {
	if accountID == "" && domain != "" {
		accountID = d.tx.AccountByDomain(domain)
	}
	if accountID == "" {
		return "", false
	}
	a, err := d.tx.Account(accountID)
	if err != nil {
		return "", false
	}
	id, ok := a.Owners[team.String()]
	return id, ok && id != ""
}

// Route is one handoff to route.
type Route struct {
	// Type is the handoff type.
	Type routingv1.HandoffType
	// Lead is the lead (MQL/PQL/SQL); for post-sale handoffs it may be nil.
	Lead *routingv1.Lead
	// AccountID is the account.
	AccountID string
	// OwnerID forces an owner (manual handoffs).
	OwnerID string
	// Reason is a free-form reason.
	Reason string
	// RequestID makes the call idempotent.
	RequestID string
	// Signal is the CEL `signal` variable.
	Signal map[string]any
	// Rule, when set with OwnerID, names the decision (e.g. "account_ae").
	Rule string
	// At is when the handoff happened: the triggering event's time, so that
	// a consumer catching up after downtime starts SLA clocks when the lead
	// qualified, not when the record was processed. Zero means now; a time
	// after now is clamped to now.
	At time.Time
}

// RouteTx routes one handoff inside tx and returns the stored assignment.
func (s *Service) RouteTx(tx *store.Tx, r Route) (*routingv1.Assignment, error) {
	start := time.Now()
	defer func() { s.decision.Observe(time.Since(start).Seconds()) }()
	if r.RequestID != "" {
		if id := tx.RequestAssignment(r.RequestID); id != "" {
			return tx.Assignment(id)
		}
	}
	now := s.clk.Now()
	if !r.At.IsZero() && r.At.Before(now) {
		now = r.At
	}
	cfg, eng, err := s.engine(tx)
	if err != nil {
		return nil, err
	}
	lead := r.Lead
	if lead == nil {
		lead = &routingv1.Lead{}
	}
	accountID := r.AccountID
	if accountID == "" {
		accountID = lead.GetAccountId()
	}
	if accountID != "" && blockedWhenChurned(r.Type) {
		st, err := accountStatus(tx, accountID)
		if err != nil {
			return nil, err
		}
		if st == account.StatusChurned {
			return nil, &churnedError{account: accountID}
		}
	}
	dup, err := s.pendingDuplicate(tx, r, accountID, strings.ToLower(lead.GetEmail()), now)
	if err != nil {
		return nil, err
	}
	if dup != nil {
		return s.foldDuplicate(tx, dup, r.RequestID, now)
	}
	acct, err := tx.Account(accountID)
	if err != nil {
		return nil, err
	}
	if accountID == "" {
		acct = &store.Account{}
	}
	id, err := tx.NextAssignmentID()
	if err != nil {
		return nil, err
	}
	a := &routingv1.Assignment{
		Workspace: tx.Workspace(), AssignmentId: id, Type: r.Type, AccountId: accountID, Lead: lead,
		CreatedAt: timestamppb.New(now), Reason: r.Reason,
	}
	segment := lead.GetSegment()
	if segment == "" {
		segment, _ = acct.Traits["segment"].(string)
	}
	territory := lead.GetTerritory()
	if territory == "" {
		territory, _ = acct.Traits["territory"].(string)
	}
	dir := &directory{s: s, tx: tx}
	if r.OwnerID != "" {
		if _, ok := dir.Owner(r.OwnerID); !ok {
			return nil, fmt.Errorf("route to owner %q: %w", r.OwnerID, apierr.ErrNotFound)
		}
		rule := r.Rule
		if rule == "" {
			rule = "manual"
		}
		a.OwnerId = r.OwnerID
		a.Decision = &routingv1.Decision{Rule: rule, Candidates: []*routingv1.Candidate{{OwnerId: r.OwnerID, Chosen: true, OpenAssignments: int32(dir.Load(r.OwnerID))}}}
	} else {
		res := eng.Decide(rules.Input{
			Type: r.Type, AccountID: accountID, Email: lead.GetEmail(),
			Lead: leadVars(lead), Account: accountVars(accountID, acct), Signal: r.Signal, Now: now,
			Territory: territory, Segment: segment,
		}, dir)
		for _, err := range res.Errors {
			s.logger.Warn("routing rule error", "workspace", tx.Workspace(), "err", err)
		}
		for pool, c := range res.Cursors {
			if err := tx.PutCursor(pool, c); err != nil {
				return nil, err
			}
		}
		a.OwnerId, a.Decision = res.OwnerID, res.Decision
	}
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	if a.GetOwnerId() == "" {
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED
	} else {
		o, _ := dir.Owner(a.GetOwnerId())
		if p := sla.Select(cfg.GetSlaPolicies(), r.Type, segment); p != nil {
			a.Sla = sla.Start(p, o.Calendar, now)
			if err := s.armNext(tx, a, o.Calendar, now); err != nil {
				return nil, err
			}
		}
		if accountID != "" && o.Owner.GetTeam() != routingv1.Team_TEAM_UNSPECIFIED {
			if acct.Owners == nil {
				acct.Owners = map[string]string{}
			}
			acct.Owners[o.Owner.GetTeam().String()] = a.GetOwnerId()
		}
	}
	if accountID != "" {
		if d := rules.Domain(lead.GetEmail()); d != "" && acct.Domain == "" {
			acct.Domain = d
		}
		if err := tx.PutAccount(accountID, acct); err != nil {
			return nil, err
		}
	}
	if err := tx.PutAssignment(a); err != nil {
		return nil, err
	}
	if r.RequestID != "" {
		if err := tx.PutRequest(r.RequestID, id); err != nil {
			return nil, err
		}
	}
	if err := s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}}); err != nil {
		return nil, err
	}
	return a, nil
}

func leadVars(l *routingv1.Lead) map[string]any {
	m := map[string]any{}
	for k, v := range l.GetAttributes() {
		m[k] = v
	}
	for k, v := range map[string]string{
		"lead_id": l.GetLeadId(), "email": l.GetEmail(), "account_id": l.GetAccountId(), "name": l.GetName(),
		"segment": l.GetSegment(), "territory": l.GetTerritory(), "domain": rules.Domain(l.GetEmail()),
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

func accountVars(id string, a *store.Account) map[string]any {
	m := map[string]any{}
	for k, v := range a.Traits {
		m[k] = v
	}
	if id != "" {
		m["account_id"] = id
	}
	if a.Domain != "" {
		m["domain"] = a.Domain
	}
	if a.Stage != "" {
		m["stage"] = a.Stage
	}
	if a.HealthBand != "" {
		m["health_band"] = a.HealthBand
		m["health_score"] = a.HealthScore
	}
	return m
}

// publish appends a record to the routing log in the account's partition.
func (s *Service) publish(tx *store.Tx, account string, rec *routingv1.LogRecord) error {
	data, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("marshal log record: %w", err)
	}
	return s.publishRaw(tx, account, data)
}

// publishRaw appends an encoded LogRecord to the routing log.
func (s *Service) publishRaw(tx *store.Tx, account string, data []byte) error {
	if _, err := s.log.AppendTx(tx.Base(), stream.Partition(tx.Workspace(), account, s.parts), data); err != nil {
		return fmt.Errorf("append routing log: %w", err)
	}
	return nil
}

func (s *Service) slaEvent(tx *store.Tx, a *routingv1.Assignment, kind sla.Kind, newOwner string, at time.Time) error {
	return s.publishRaw(tx, a.GetAccountId(), store.SLAEventRecord(tx.Workspace(), a.GetAssignmentId(), string(kind), a.GetOwnerId(), newOwner, at, nil, nil))
}

// stepRecord encodes the one SLA event record of a clock step: the latest
// threshold reached, listing the earlier ones it overtook (due before it,
// fired late together with it) as passed. A step fired on time has one
// event and no passed thresholds. enc, when not nil, is the assignment's
// new encoding, carried in the event instead of a record of its own.
func stepRecord(ws string, a *routingv1.Assignment, step clockStep, enc []byte) []byte {
	last := step.events[len(step.events)-1]
	return store.SLAEventRecord(ws, a.GetAssignmentId(), string(last.Kind), a.GetOwnerId(), "", last.At, step.events[:len(step.events)-1], enc)
}

// armNext arms the next timer of a's clock, measured from ref, or disarms.
func (s *Service) armNext(tx *store.Tx, a *routingv1.Assignment, cal *hours.Calendar, ref time.Time) error {
	t, ok := sla.Next(a.GetSla(), cal, ref)
	if !ok {
		return tx.Disarm(a.GetAssignmentId())
	}
	return tx.Arm(a.GetAssignmentId(), t.At, string(t.Kind))
}

// Update runs fn in one write transaction scoped to ws and wakes the timer
// loop afterwards.
func (s *Service) Update(ws string, fn func(tx *store.Tx) error) error {
	err := s.db.Update(func(tx *pstore.Tx) error { return fn(store.In(tx, ws)) })
	if err == nil {
		s.notify()
	}
	return err
}

// Commit runs fn in a group-committed write transaction scoped to ws: many
// concurrent handoffs share one fsync. fn may run more than once (when
// another member of the group fails), so it must only act through tx; the
// caches it may fill hold only data that directory writes (Update) commit.
func (s *Service) Commit(ctx context.Context, ws string, fn func(tx *store.Tx) error) error {
	err := s.db.Commit(ctx, func(tx *pstore.Tx) error { return fn(store.In(tx, ws)) })
	if err == nil {
		s.notify()
	}
	return err
}

// commitValue is Commit for a function that computes a result: it returns
// the result of the run that committed (pstore.CommitValue).
func commitValue[T any](ctx context.Context, s *Service, ws string, fn func(tx *store.Tx) (T, error)) (T, error) {
	v, err := pstore.CommitValue(ctx, s.db, func(tx *pstore.Tx) (T, error) { return fn(store.In(tx, ws)) })
	if err == nil {
		s.notify()
	}
	return v, err
}

// View runs fn in a read transaction scoped to ws.
func (s *Service) View(ws string, fn func(tx *store.Tx) error) error {
	return s.db.View(func(tx *pstore.Tx) error { return fn(store.In(tx, ws)) })
}

// TouchTx records a touch on an assignment at (clamped to the interval
// from its creation to now).
func (s *Service) TouchTx(tx *store.Tx, id, touch string, at time.Time) (*routingv1.Assignment, error) {
	if err := s.fireUntil(tx, id, at); err != nil {
		return nil, err
	}
	a, err := tx.Assignment(id)
	if err != nil {
		return nil, err
	}
	if a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED {
		return a, nil
	}
	// A touch counts between the assignment's creation and now: CRM events
	// replayed late or clocks that disagree cannot move it outside that.
	if created := a.GetCreatedAt().AsTime(); at.Before(created) {
		at = created
	}
	if now := s.clk.Now(); at.After(now) {
		at = now
	}
	prevState := a.GetState()
	if a.GetFirstTouchAt() == nil {
		a.FirstTouchAt = timestamppb.New(at)
		a.TimeToFirstTouch = durationpb.New(at.Sub(a.GetCreatedAt().AsTime()))
	}
	cal := s.ownerCalendar(tx, a.GetOwnerId())
	policy := s.policy(tx, a)
	if a.GetSla() != nil && sla.Satisfies(policy, touch) {
		switch {
		case sla.Meet(a.GetSla(), cal, at):
			if err := tx.Disarm(id); err != nil {
				return nil, err
			}
			if err := s.slaEvent(tx, a, sla.Met, "", at); err != nil {
				return nil, err
			}
		case sla.MeetLate(a.GetSla(), at):
			// Worked, late: the breach stands in the reports, but the
			// handoff is no longer waiting for anyone.
			if err := s.slaEvent(tx, a, sla.MetLate, "", at); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case touch == sla.TouchDisqualified:
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED
		if err := tx.Disarm(id); err != nil {
			return nil, err
		}
	case a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN && (a.GetSla() == nil || a.GetSla().GetMetAt() != nil):
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED
	case a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED && a.GetSla().GetMetAt() != nil:
		// A touch from before the due time that arrived after the breach
		// fired (sla.Meet): met on time after all.
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED
	case a.GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED && a.GetSla().GetMetLate():
		a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED
	}
	if err := tx.PutAssignment(a); err != nil {
		return nil, err
	}
	if err := s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}}); err != nil {
		return nil, err
	}
	if store.Open(prevState) && !store.Open(a.GetState()) {
		if _, err := s.RerouteUnassigned(tx, rerouteOnFreed); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// policy finds the policy an assignment's clock runs under (by name, among
// the active config's and the defaults).
func (s *Service) policy(tx *store.Tx, a *routingv1.Assignment) *routingv1.SlaPolicy {
	name := a.GetSla().GetPolicy()
	cfg, _, err := s.engine(tx)
	if err == nil {
		for _, p := range cfg.GetSlaPolicies() {
			if p.GetName() == name {
				return p
			}
		}
	}
	for _, p := range sla.Defaults() {
		if p.GetName() == name {
			return p
		}
	}
	return &routingv1.SlaPolicy{Name: name}
}

// PauseTx pauses an assignment's SLA clock.
func (s *Service) PauseTx(tx *store.Tx, id, reason string) (*routingv1.Assignment, error) {
	a, err := tx.Assignment(id)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || !sla.Pause(a.GetSla(), s.ownerCalendar(tx, a.GetOwnerId()), now) {
		return nil, apierr.FailedPrecondition("pause assignment %q in state %s", id, a.GetState())
	}
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED
	if reason != "" {
		a.Reason = reason
	}
	if err := tx.Disarm(id); err != nil {
		return nil, err
	}
	if err := tx.PutAssignment(a); err != nil {
		return nil, err
	}
	return a, s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}})
}

// ResumeTx resumes a paused SLA clock.
func (s *Service) ResumeTx(tx *store.Tx, id string) (*routingv1.Assignment, error) {
	a, err := tx.Assignment(id)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	cal := s.ownerCalendar(tx, a.GetOwnerId())
	if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED || !sla.Resume(a.GetSla(), cal, now) {
		return nil, apierr.FailedPrecondition("resume assignment %q in state %s", id, a.GetState())
	}
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	if err := s.armNext(tx, a, cal, now); err != nil {
		return nil, err
	}
	if err := tx.PutAssignment(a); err != nil {
		return nil, err
	}
	return a, s.publish(tx, a.GetAccountId(), &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}})
}

// ReassignTx moves an OPEN assignment, or a BREACHED one not yet touched,
// to ownerID by hand. The new owner gets a fresh clock under the same
// policy, started now on their calendar, as an escalation on breach gives
// (reassign): they are judged on time they had. The previous owner is kept
// in previous_owner_ids and the move in reassignments, which records
// whether their clock had breached, so the reports count a breach against
// them only then. Timers already due fire first, so a reassignment cannot
// erase a breach that the timer loop has not reached yet.
func (s *Service) ReassignTx(tx *store.Tx, id, ownerID, reason string) (*routingv1.Assignment, error) {
	now := s.clk.Now()
	if err := s.fireUntil(tx, id, now); err != nil {
		return nil, err
	}
	a, err := tx.Assignment(id)
	if err != nil {
		return nil, err
	}
	prevOwner, prevState := a.GetOwnerId(), a.GetState()
	switch prevState {
	case routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED:
	default:
		return nil, apierr.FailedPrecondition("reassign assignment %q in state %s: only OPEN or BREACHED (untouched) assignments can be reassigned", id, prevState)
	}
	if ownerID == prevOwner {
		return nil, apierr.Field("owner_id", "assignment %q is already owned by %q", id, ownerID)
	}
	if s.owner(tx, ownerID) == nil {
		return nil, apierr.NotFound("owner_id: no owner %q in this workspace", ownerID)
	}
	a.Reassignments = append(a.Reassignments, &routingv1.Reassignment{
		FromOwnerId: prevOwner, ToOwnerId: ownerID, At: timestamppb.New(now), Reason: reason,
		Breached: prevState == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED,
	})
	// The reason stays with the move (reassignments); the assignment's own
	// reason is why it was handed off in the first place.
	if a.GetSla() != nil {
		if err := s.reassign(tx, a, s.policy(tx, a), ownerID, now); err != nil {
			return nil, err
		}
	} else {
		a.PreviousOwnerIds = append(a.PreviousOwnerIds, prevOwner)
		a.OwnerId = ownerID
	}
	enc, err := tx.UpdateAssignment(a, prevOwner, prevState)
	if err != nil {
		return nil, err
	}
	// The previous owner's slot is free.
	if _, err := s.RerouteUnassigned(tx, rerouteOnFreed); err != nil {
		return nil, err
	}
	if err := s.publishRaw(tx, a.GetAccountId(), store.AssignmentRecord(enc)); err != nil {
		return nil, err
	}
	return a, nil
}

// maxCatchUpFires bounds fireUntil: warnings, a breach and an escalation per
// owner of a pool, far more than any real clock has pending at once.
const maxCatchUpFires = 64

// fireUntil fires the assignment's timers due before at, in order. Live they
// would have fired already; while a backlog is applied in event time
// (fireHorizon) a touch can arrive before them, and it must not meet a
// deadline that had passed when it happened.
func (s *Service) fireUntil(tx *store.Tx, id string, at time.Time) error {
	var b *fireBatch
	for range maxCatchUpFires {
		tm, ok, err := tx.ArmedTimer(id)
		if err != nil || !ok || tm.Due.After(at) {
			return err
		}
		if b == nil {
			b = newFireBatch()
		}
		t, err := s.fireTx(tx, tm, at, b)
		if err != nil {
			return fmt.Errorf("fire %s timer of %s before a touch: %w", tm.Kind, id, err)
		}
		if t != 0 {
			tx.OnCommit(func() { s.breaches.WithLabelValues(rules.TypeName(t)).Inc() })
		}
	}
	return nil
}

// fireTx fires one due timer: the timer's deletion, the SLA state change,
// any escalation and the log records commit together, so a timer fires
// exactly once even across kill -9. When later timers of the same clock are
// already due at now (after downtime), they fire in the same step as one
// record of the latest threshold reached, which lists the earlier ones as
// passed, each with its own due time. b caches calendars and policies for
// the batch.
func (s *Service) fireTx(tx *store.Tx, tm store.Timer, now time.Time, b *fireBatch) (breached routingv1.HandoffType, err error) {
	if err := tx.DeleteTimer(tm); err != nil {
		return 0, err
	}
	a, err := tx.Assignment(tm.AssignmentID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !sla.Running(a.GetSla()) {
		return 0, nil
	}
	prevOwner, prevState := a.GetOwnerId(), a.GetState()
	step := advanceClock(a, b.calendar(s, tx, a.GetOwnerId()), tm, now)
	if !step.breached {
		if err := s.publishRaw(tx, a.GetAccountId(), stepRecord(tx.Workspace(), a, step, nil)); err != nil {
			return 0, err
		}
		if step.armed {
			if err := tx.Arm(a.GetAssignmentId(), step.next.At, string(step.next.Kind)); err != nil {
				return 0, err
			}
		}
		_, err := tx.UpdateAssignment(a, prevOwner, prevState)
		return 0, err
	}
	t := step.events[len(step.events)-1]
	p := b.policy(s, tx, a)
	if !p.GetReassignOnBreach() && !p.GetNotifyManager() {
		// The breach is the only change: it carries the breached
		// assignment instead of a second record.
		enc, err := tx.UpdateAssignment(a, prevOwner, prevState)
		if err != nil {
			return 0, err
		}
		return a.GetType(), s.publishRaw(tx, a.GetAccountId(), stepRecord(tx.Workspace(), a, step, enc))
	}
	if err := s.publishRaw(tx, a.GetAccountId(), stepRecord(tx.Workspace(), a, step, nil)); err != nil {
		return 0, err
	}
	next := ""
	if p.GetReassignOnBreach() && a.GetDecision().GetPoolId() != "" {
		next = s.nextInPool(tx, a, t.At)
	}
	if err := s.slaEvent(tx, a, sla.Escalation, next, t.At); err != nil {
		return 0, err
	}
	if p.GetNotifyManager() {
		if err := s.notifyManager(tx, a, t.At); err != nil {
			return 0, err
		}
	}
	if next != "" {
		if err := s.reassign(tx, a, p, next, t.At); err != nil {
			return 0, err
		}
	}
	enc, err := tx.UpdateAssignment(a, prevOwner, prevState)
	if err != nil {
		return 0, err
	}
	if a.GetOwnerId() != prevOwner {
		// The breaching owner's slot is free.
		if _, err := s.RerouteUnassigned(tx, rerouteOnFreed); err != nil {
			return 0, err
		}
	}
	// The stored encoding is the LogRecord's assignment field as is: one
	// marshal instead of two.
	if err := s.publishRaw(tx, a.GetAccountId(), store.AssignmentRecord(enc)); err != nil {
		return 0, err
	}
	return a.GetType(), nil
}

// clockStep is what firing one timer does to an assignment's SLA clock.
type clockStep struct {
	// events are the SLA events that fired, in order, each at its due time.
	events []sla.Timer
	// breached is set when the last event is the breach; the assignment's
	// state is then BREACHED.
	breached bool
	// armed is set when the clock continues with next, which is due after
	// now.
	armed bool
	next  sla.Timer
}

// advanceClock fires tm on a's running clock (mutating a) and every later
// step of the same clock that is also due at now. It only computes, so the
// timer loop can run it outside the write transaction; fireTx and the
// prepared path share it and so cannot disagree.
func advanceClock(a *routingv1.Assignment, cal *hours.Calendar, tm store.Timer, now time.Time) clockStep {
	var step clockStep
	t := sla.Timer{Kind: sla.Kind(tm.Kind), At: tm.Due}
	for {
		sla.Fire(a.GetSla(), t)
		step.events = append(step.events, t)
		if t.Kind == sla.Breach {
			step.breached = true
			a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
			return step
		}
		next, ok := sla.Next(a.GetSla(), cal, t.At)
		if !ok {
			return step
		}
		if next.At.After(now) {
			step.armed, step.next = true, next
			return step
		}
		t = next
	}
}

// calendar is the owner's calendar, built once per batch.
func (b *fireBatch) calendar(s *Service, tx *store.Tx, owner string) *hours.Calendar {
	key := tx.Workspace() + "\x00" + owner
	cal, ok := b.cals[key]
	if !ok {
		cal = s.ownerCalendar(tx, owner)
		b.cals[key] = cal
	}
	return cal
}

// policy is the assignment's SLA policy, looked up once per batch.
func (b *fireBatch) policy(s *Service, tx *store.Tx, a *routingv1.Assignment) *routingv1.SlaPolicy {
	key := tx.Workspace() + "\x00" + a.GetSla().GetPolicy()
	p, ok := b.policies[key]
	if !ok {
		p = s.policy(tx, a)
		b.policies[key] = p
	}
	return p
}

// notifyManager publishes a manager_notified event whose owner_id is the
// breaching owner's manager, so a notifier subscribed to the routing log can
// find whom to tell without reading the directory. Owners without a manager
// (or gone from the directory) produce no event.
func (s *Service) notifyManager(tx *store.Tx, a *routingv1.Assignment, at time.Time) error {
	o := s.owner(tx, a.GetOwnerId())
	if o == nil || o.Owner.GetManagerId() == "" {
		return nil
	}
	return s.publishRaw(tx, a.GetAccountId(), store.SLAEventRecord(tx.Workspace(), a.GetAssignmentId(), string(sla.ManagerNotified), o.Owner.GetManagerId(), "", at, nil, nil))
}

// reassign hands a breached assignment to next with a fresh clock under the
// same policy, started at the breach instant on next's calendar, so the new
// owner gets the full allowed time with its own warnings and breach. A
// policy that no longer has an allowed time (deleted from the config) gives
// no clock, which keeps a chain of instant breaches from happening.
func (s *Service) reassign(tx *store.Tx, a *routingv1.Assignment, p *routingv1.SlaPolicy, next string, at time.Time) error {
	a.PreviousOwnerIds = append(a.PreviousOwnerIds, a.GetOwnerId())
	a.OwnerId = next
	if p.GetWithin().AsDuration() <= 0 {
		return nil
	}
	cal := s.ownerCalendar(tx, next)
	a.Sla = sla.Start(p, cal, at)
	a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
	return s.armNext(tx, a, cal, at)
}

// nextInPool is the first owner after the current one in the decision's pool
// who can take work now (not away, not at capacity); "" if none.
func (s *Service) nextInPool(tx *store.Tx, a *routingv1.Assignment, now time.Time) string {
	pool, err := tx.Pool(a.GetDecision().GetPoolId())
	if err != nil {
		return ""
	}
	ids := pool.GetOwnerIds()
	start := 0
	for i, id := range ids {
		if id == a.GetOwnerId() {
			start = i + 1
		}
	}
	dir := &directory{s: s, tx: tx}
	for k := range len(ids) {
		id := ids[(start+k)%len(ids)]
		if id == a.GetOwnerId() || slices.Contains(a.GetPreviousOwnerIds(), id) {
			continue
		}
		o, ok := dir.Owner(id)
		if !ok || o.Calendar.Away(now) {
			continue
		}
		if c := o.Owner.GetCapacity(); c > 0 && dir.Load(id) >= int(c) {
			continue
		}
		return id
	}
	return ""
}
