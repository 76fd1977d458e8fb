// Package demo generates a deterministic, realistic B2B SaaS workspace as
// Segment-spec events: a year of marketing touches, buying committees, CRM
// pipeline, contracts, product usage, support tickets, NPS surveys, QBRs,
// renewals and churn.
//
// Accounts that were already customers when the year began arrive with a
// backfill of their earlier milestones (deal won, contract, activation) at
// the times they happened, up to about two years back.
//
// The generator is pure: the same Options always produce the same events in
// the same order, so `make run` is reproducible and tests can pin a golden
// hash. Churn is decided from the simulated behaviour (seat utilisation,
// detractor NPS, unresolved P1 tickets), so health models have a real signal
// to find.
package demo

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// Segments an account can belong to.
const (
	SegmentSMB        = "smb"
	SegmentMidMarket  = "mid-market"
	SegmentEnterprise = "enterprise"
)

// Personas of a buying committee, as sent in identify traits "role".
const (
	RoleChampion      = "champion"
	RoleEconomicBuyer = "economic_buyer"
	RoleITSecurity    = "it_security"
	RoleProcurement   = "procurement"
	RoleEndUser       = "end_user"
)

// Options controls the generated workspace.
type Options struct {
	// Seed makes the output reproducible; different seeds give different workspaces.
	Seed uint64
	// Accounts is the number of companies to simulate (default 300).
	Accounts int
	// Now is the end of the simulated year; no event is later than Now.
	// It is truncated to the day so that output does not depend on the hour.
	Now time.Time
	// Workspace is stamped on nothing in the events themselves (Segment calls
	// carry no tenant), but prefixes message ids so that two demo workspaces
	// loaded into the same suite do not deduplicate each other.
	Workspace string
}

// Event is one Segment-spec call, serialised exactly as Segment's HTTP API
// accepts it.
type Event struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	Event       string         `json:"event,omitempty"`
	Name        string         `json:"name,omitempty"`
	GroupID     string         `json:"groupId,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
	Timestamp   time.Time      `json:"timestamp"`
}

// Account is the ground truth behind one simulated company, for tests and
// for the summary printed after loading.
type Account struct {
	ID       string
	Name     string
	Domain   string
	Segment  string
	Industry string
	Region   string
	// Trajectory is the account's usage over the year: "steady", "growing"
	// or "collapsing".
	Trajectory string
	// Customer is true when the account had a contract at some point in the year.
	Customer bool
	// Churned is true when the account cancelled at a renewal.
	Churned bool
	// Renewals counts renewals within the year.
	Renewals int
	// Seats is the latest contracted seat count (0 for non-customers).
	Seats int
	// Utilization is the mean weekly share of seats active over the last 12
	// weeks as a customer (before churn, or before now).
	Utilization float64
	// UsageEvents counts product events emitted for the account.
	UsageEvents int
}

// Dataset is a generated workspace.
type Dataset struct {
	Accounts []Account
	// Events are ordered by timestamp, ties by generation order.
	Events []Event
}

// Identified is the number of accounts with at least one event attributed
// to them (through context.groupId or a group call). The others only
// visited anonymously, so no service has an account for them.
func (d *Dataset) Identified() int {
	ids := map[string]bool{}
	for _, ev := range d.Events {
		if g, _ := ev.Context["groupId"].(string); g != "" {
			ids[g] = true
		}
		if ev.GroupID != "" {
			ids[ev.GroupID] = true
		}
	}
	return len(ids)
}

// Generate simulates the workspace. It never fails: bad options fall back to
// defaults.
func Generate(opts Options) Dataset {
	if opts.Accounts <= 0 {
		opts.Accounts = 300
	}
	if opts.Now.IsZero() {
		opts.Now = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	if opts.Workspace == "" {
		opts.Workspace = "demo"
	}
	now := opts.Now.UTC().Truncate(24 * time.Hour)
	var ds Dataset
	names := newNamer()
	type stamped struct {
		ev  Event
		seq int
	}
	var all []stamped
	for i := range opts.Accounts {
		// One stream per account keeps accounts independent of each other's
		// random draws, so changing one rule does not reshuffle everything.
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(i)+1))
		s := &sim{rng: rng, now: now, start: now.AddDate(0, 0, -365), idPrefix: fmt.Sprintf("%s-%d-%d", opts.Workspace, opts.Seed, i)}
		s.account = names.account(rng, i)
		s.run()
		s.answerPQLs()
		ds.Accounts = append(ds.Accounts, s.account)
		for _, ev := range s.events {
			all = append(all, stamped{ev: ev, seq: len(all)})
		}
	}
	sort.SliceStable(all, func(a, b int) bool {
		if !all[a].ev.Timestamp.Equal(all[b].ev.Timestamp) {
			return all[a].ev.Timestamp.Before(all[b].ev.Timestamp)
		}
		return all[a].seq < all[b].seq
	})
	ds.Events = make([]Event, len(all))
	for i, s := range all {
		ds.Events[i] = s.ev
	}
	return ds
}

// person is a simulated user of an account.
type person struct {
	id, anon, email, name, title, role string
}

// sim simulates one account over the year.
type sim struct {
	rng      *rand.Rand
	now      time.Time
	start    time.Time
	idPrefix string
	n        int
	account  Account
	events   []Event
	people   []person

	// fit is how well the account matches the ideal customer profile; it
	// drives conversion. engagement is the latent product health.
	fit, engagement float64
	trajectory      string // steady, growing, collapsing
	plan            string
	seats           int
	arr             float64
	tickets         int
	openP1          map[string]bool
	activated       bool
	lastNPS         int
}

func (s *sim) float(lo, hi float64) float64 { return lo + s.rng.Float64()*(hi-lo) }
func (s *sim) chance(p float64) bool        { return s.rng.Float64() < p }
func (s *sim) intn(lo, hi int) int          { return lo + s.rng.IntN(hi-lo+1) }

// at returns a business-hours time on the day of t, or t itself if later.
func (s *sim) workTime(day time.Time) time.Time {
	d := day.UTC().Truncate(24 * time.Hour)
	return d.Add(time.Duration(s.intn(8*60, 18*60))*time.Minute + time.Duration(s.intn(0, 59))*time.Second)
}

func (s *sim) nextID() string {
	s.n++
	return fmt.Sprintf("%s-%05d", s.idPrefix, s.n)
}

// emit records an event unless it falls after now.
func (s *sim) emit(ev Event) bool {
	if ev.Timestamp.After(s.now) {
		return false
	}
	ev.MessageID = s.nextID()
	if ev.Context == nil {
		ev.Context = map[string]any{}
	}
	ev.Context["library"] = map[string]any{"name": "cairn-demo", "version": "1"}
	if ev.GroupID == "" && ev.Type != "group" && ev.UserID != "" {
		ev.Context["groupId"] = s.account.ID
	}
	s.events = append(s.events, ev)
	return true
}

func (s *sim) track(p person, name string, at time.Time, props map[string]any) bool {
	return s.emit(Event{Type: "track", UserID: p.id, Event: name, Timestamp: at, Properties: props})
}

// system emits a track call from a back-office system (CRM, billing,
// support) about the account, attributed through context.groupId.
func (s *sim) system(name string, at time.Time, props map[string]any) bool {
	if props == nil {
		props = map[string]any{}
	}
	ev := Event{Type: "track", AnonymousID: "system-" + strings.SplitN(name, ".", 2)[0], Event: name, Timestamp: at, Properties: props}
	ev.Context = map[string]any{"groupId": s.account.ID}
	return s.emit(ev)
}

// side returns a deterministic number in [0, 1) for key without drawing
// from s.rng, so that the post-sale touches below leave the rest of the
// simulation (and the golden churn relationship) unchanged.
func (s *sim) side(key string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s.idPrefix + "\x00" + s.account.ID + "\x00" + key))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// kickoff books the post-sale kickoff meeting after a closed-won: usually
// within a couple of business days, sometimes late, as real CS teams do.
func (s *sim) kickoff(won time.Time) {
	key := won.Format(time.RFC3339)
	days := 1 + int(s.side("kickoff-delay/"+key)*2)
	if s.side("kickoff-late/"+key) < 0.25-0.15*s.fit {
		days = 5 + int(s.side("kickoff-late-days/"+key)*5)
	}
	at := s.workTime(won.AddDate(0, 0, days))
	s.system("crm.meeting_booked", at, map[string]any{"meeting_at": s.workTime(at.AddDate(0, 0, 2)).Format(time.RFC3339), "purpose": "kickoff"})
}

// nextStep is the AE's discovery meeting after accepting an SQL: usually
// booked the next day, now and then much later.
func (s *sim) nextStep(accepted time.Time) {
	key := accepted.Format(time.RFC3339)
	days := 1
	if s.side("next-step-late/"+key) < 0.12-0.08*s.fit {
		days = 4 + int(s.side("next-step-late-days/"+key)*6)
	}
	at := s.workTime(accepted.AddDate(0, 0, days))
	s.system("crm.meeting_booked", at, map[string]any{"meeting_at": s.workTime(at.AddDate(0, 0, 3)).Format(time.RFC3339), "purpose": "discovery"})
}

// trialTeam is the rest of a trial started at started: the champion
// invites colleagues, who try a few features on a few days (better-fitting
// accounts bring more of them), and some trials connect an integration.
// These are what the demo's PQL rules look for. Choices and times come
// from side hashes, so the random stream is unchanged.
func (s *sim) trialTeam(started time.Time) {
	day := func(d int, key string) time.Time {
		return started.UTC().Truncate(24*time.Hour).AddDate(0, 0, d).Add(time.Duration(8*60+s.side(key+"/at")*10*60) * time.Minute)
	}
	for k, p := range s.people[1:] {
		key := fmt.Sprintf("trial-team/%d", k)
		if s.side(key) > 0.2+0.5*s.fit {
			continue
		}
		first := 2 + int(s.side(key+"/day")*8)
		for u, d := 0, first; u < 1+int(s.side(key+"/uses")*3) && d < 14; u++ {
			use := fmt.Sprintf("%s/%d", key, u)
			s.track(p, s.sideFeature(use), day(d, use), nil)
			d += 1 + int(s.side(use+"/gap")*3)
		}
	}
	if key := "trial-integration"; s.side(key) < 0.15+0.35*s.fit {
		name := integrationNames[int(s.side(key+"/name")*float64(len(integrationNames)))]
		s.track(s.people[0], vocab.IntegrationConnected, day(3+int(s.side(key+"/day")*10), key), map[string]any{"integration": name})
	}
}

// sideFeature draws a product feature like feature(-1), from a side hash.
func (s *sim) sideFeature(key string) string {
	total := 0.0
	for _, f := range featureMix {
		total += f.weight
	}
	r := s.side(key+"/feature") * total
	for _, f := range featureMix {
		if r < f.weight {
			return f.name
		}
		r -= f.weight
	}
	return featureMix[len(featureMix)-1].name
}

// renewalCalls has the CSM call the account soon after each renewal window
// (120/90/60/30 days before the end) opens; a call is missed now and then,
// a little more often for less engaged accounts.
func (s *sim) renewalCalls(end time.Time) {
	for _, w := range []int{120, 90, 60, 30} {
		key := fmt.Sprintf("renewal-call/%s/%d", end.Format("2006-01-02"), w)
		if s.side(key) > 0.85+0.1*s.engagement {
			continue
		}
		at := s.workTime(end.AddDate(0, 0, -w+1+int(s.side(key+"/delay")*2)))
		s.system("crm.contacted", at, map[string]any{"channel": "call", "purpose": "renewal"})
	}
}

func (s *sim) run() {
	a := &s.account
	s.fit = s.rng.Float64()
	// Most customers use the product well: engagement 0.38–0.88, higher for
	// better-fitting accounts. A minority collapses (below), so that annual
	// logo churn and the at-risk share land where SaaS operators see them
	// (cmd/cairn/demo_ranges_test.go pins both on the real suite).
	s.engagement = 0.38 + 0.35*s.rng.Float64() + 0.15*s.fit
	switch r := s.rng.Float64(); {
	case r < 0.17+0.12*(1-s.fit):
		s.trajectory = "collapsing"
	case r < 0.38:
		s.trajectory = "growing"
	default:
		s.trajectory = "steady"
	}
	s.account.Trajectory = s.trajectory
	s.openP1 = map[string]bool{}
	s.lastNPS = -1
	s.buildCommittee()

	var contractStart time.Time
	if s.chance(0.35) {
		// Existing customer: signed before the window, renews inside it.
		contractStart = s.start.AddDate(0, 0, -s.intn(30, 330))
		s.seats = s.initialSeats()
		s.pickPlan()
		// Their history before the year arrives as a CRM and billing
		// backfill, at the times it happened.
		first := s.workTime(contractStart.AddDate(0, 0, -s.intn(45, 90)))
		s.groupCall(first)
		for _, p := range s.people {
			s.identify(p, first.Add(time.Minute))
		}
		s.track(s.people[0], "demo_requested", first.Add(time.Hour), nil)
		s.system("crm.closed_won", s.workTime(contractStart.AddDate(0, 0, -2)), map[string]any{"opportunity_id": "opp-" + s.account.ID, "amount": s.arr, "plan": s.plan})
		s.kickoff(s.workTime(contractStart.AddDate(0, 0, -2)))
		s.system("billing.subscription_started", s.workTime(contractStart), map[string]any{"plan": s.plan, "seats": s.seats, "arr": s.arr})
		s.contractUpdated(s.workTime(contractStart).Add(time.Minute), contractStart)
		s.track(s.people[0], "setup_completed", s.workTime(contractStart.AddDate(0, 0, s.intn(2, 6))), nil)
		s.track(s.people[0], "activated", s.workTime(contractStart.AddDate(0, 0, s.intn(7, 20))), nil)
		s.activated = true
	} else {
		won, ok := s.pipeline()
		if !ok {
			s.finish()
			return
		}
		contractStart = won.AddDate(0, 0, s.intn(1, 7))
		if contractStart.After(s.now) {
			s.finish()
			return
		}
		s.system("billing.subscription_started", s.workTime(contractStart), map[string]any{"plan": s.plan, "seats": s.seats, "arr": s.arr})
		s.contractUpdated(s.workTime(contractStart).Add(time.Minute), contractStart)
	}
	a.Customer = true
	s.customer(contractStart)
	s.finish()
}

func (s *sim) finish() {
	a := &s.account
	a.Seats = s.seats
	if !a.Customer {
		a.Seats = 0
	}
}

func (s *sim) initialSeats() int {
	switch s.account.Segment {
	case SegmentEnterprise:
		return s.intn(30, 90)
	case SegmentMidMarket:
		return s.intn(10, 35)
	default:
		return s.intn(3, 12)
	}
}

func (s *sim) pickPlan() {
	switch s.account.Segment {
	case SegmentEnterprise:
		s.plan = "enterprise"
		s.arr = float64(s.seats) * 900
	case SegmentMidMarket:
		s.plan = "business"
		s.arr = float64(s.seats) * 600
	default:
		s.plan = "team"
		s.arr = float64(s.seats) * 360
	}
}

func (s *sim) buildCommittee() {
	a := &s.account
	size := 2
	switch a.Segment {
	case SegmentEnterprise:
		size = s.intn(6, 9)
	case SegmentMidMarket:
		size = s.intn(4, 6)
	default:
		size = s.intn(2, 3)
	}
	roles := []string{RoleChampion, RoleEconomicBuyer}
	if a.Segment != SegmentSMB {
		roles = append(roles, RoleITSecurity)
	}
	if a.Segment == SegmentEnterprise {
		roles = append(roles, RoleProcurement)
	}
	for len(roles) < size {
		roles = append(roles, RoleEndUser)
	}
	for i := range size {
		s.people = append(s.people, s.newPerson(i, roles[i]))
	}
}

func (s *sim) newPerson(i int, role string) person {
	first := firstNames[s.rng.IntN(len(firstNames))]
	last := lastNames[s.rng.IntN(len(lastNames))]
	return person{
		id:    fmt.Sprintf("%s-u%03d", s.account.ID, i+1),
		anon:  fmt.Sprintf("anon-%s-%03d", s.account.ID, i+1),
		email: fmt.Sprintf("%s.%s@%s", strings.ToLower(first), strings.ToLower(last), s.account.Domain),
		name:  first + " " + last,
		title: titles[role][s.rng.IntN(len(titles[role]))],
		role:  role,
	}
}

func (s *sim) identify(p person, at time.Time) {
	s.emit(Event{Type: "identify", UserID: p.id, AnonymousID: p.anon, Timestamp: at, Traits: map[string]any{
		"email": p.email, "name": p.name, "title": p.title, "role": p.role, "company": s.account.Name,
	}})
}

func (s *sim) groupCall(at time.Time) {
	a := s.account
	s.emit(Event{Type: "group", UserID: s.people[0].id, GroupID: a.ID, Timestamp: at, Traits: map[string]any{
		"name": a.Name, "domain": a.Domain, "segment": a.Segment, "industry": a.Industry, "region": a.Region,
		"employees": map[string]int{SegmentSMB: 40, SegmentMidMarket: 400, SegmentEnterprise: 5000}[a.Segment],
	}})
	for _, p := range s.people[1:] {
		s.emit(Event{Type: "group", UserID: p.id, GroupID: a.ID, Timestamp: at})
	}
}

// day formats a contract date as the RFC 3339 date-time docs/events.md requires.
func day(t time.Time) string { return t.UTC().Truncate(24 * time.Hour).Format(time.RFC3339) }

func (s *sim) contractUpdated(at, contractStart time.Time) {
	s.system("billing.contract_updated", at, map[string]any{
		"plan": s.plan, "seats": s.seats, "arr": s.arr,
		"contract_start": day(contractStart), "contract_end": day(contractStart.AddDate(1, 0, 0)),
	})
}

// pipeline simulates marketing and sales for a prospect. It returns the
// close date when the deal is won.
func (s *sim) pipeline() (time.Time, bool) {
	t := s.workTime(s.start.AddDate(0, 0, s.intn(0, 330)))
	champ := s.people[0]
	pages := []struct{ name, path string }{{"Home", "/"}, {"Pricing", "/pricing"}, {"Docs", "/docs"}, {"Blog", "/blog/customer-journey-metrics"}, {"Integrations", "/integrations"}}
	// Anonymous research.
	for range s.intn(1, 4) {
		pg := pages[s.rng.IntN(len(pages))]
		s.emit(Event{Type: "page", AnonymousID: champ.anon, Name: pg.name, Timestamp: t, Properties: map[string]any{"path": pg.path, "url": "https://cairn.example" + pg.path}})
		t = t.Add(time.Duration(s.intn(1, 30)) * time.Minute)
	}
	if !s.chance(0.55 + 0.4*s.fit) {
		return time.Time{}, false
	}
	// Content download: the form fill identifies the visitor.
	t = s.workTime(t.AddDate(0, 0, s.intn(0, 10)))
	s.identify(champ, t)
	s.groupCall(t.Add(time.Second))
	s.track(champ, "content_downloaded", t.Add(2*time.Second), map[string]any{"asset": []string{"journey-playbook", "health-score-guide", "revops-benchmark"}[s.rng.IntN(3)]})
	leadID := "lead-" + s.account.ID
	s.system("crm.lead_created", t.Add(5*time.Minute), map[string]any{"lead_id": leadID, "email": champ.email, "lead_source": []string{"inbound", "webinar", "outbound"}[s.rng.IntN(3)]})
	for range s.intn(1, 3) {
		t = s.workTime(t.AddDate(0, 0, s.intn(1, 6)))
		switch s.rng.IntN(3) {
		case 0:
			s.track(champ, "content_viewed", t, map[string]any{"asset": "customer-journey-metrics"})
		case 1:
			s.track(champ, "email_clicked", t, map[string]any{"campaign": "nurture-" + []string{"a", "b", "c"}[s.rng.IntN(3)]})
		default:
			s.track(champ, "webinar_attended", t, map[string]any{"webinar": "health-scores-101"})
		}
	}
	for range s.intn(1, 5) {
		t = s.workTime(t.AddDate(0, 0, s.intn(1, 8)))
		pg := pages[1+s.rng.IntN(2)]
		s.emit(Event{Type: "page", UserID: champ.id, AnonymousID: champ.anon, Name: pg.name, Timestamp: t, Properties: map[string]any{"path": pg.path, "url": "https://cairn.example" + pg.path}})
	}
	if !s.chance(0.5 + 0.45*s.fit) {
		return time.Time{}, false
	}
	t = s.workTime(t.AddDate(0, 0, s.intn(0, 5)))
	s.system("crm.mql", t, map[string]any{"lead_id": leadID, "score": s.intn(60, 100), "email": champ.email, "reason": "content and pricing engagement"})
	s.seats = s.initialSeats()
	s.pickPlan()
	if s.chance(0.5) {
		s.track(champ, "trial_started", t.Add(time.Hour), map[string]any{"plan": s.plan})
		// Trial usage.
		for d := 1; d < 14; d += s.intn(1, 4) {
			s.track(champ, s.feature(-1), s.workTime(t.AddDate(0, 0, d)), nil)
		}
		s.trialTeam(t.Add(time.Hour))
	} else {
		s.track(champ, "demo_requested", t.Add(time.Hour), nil)
	}
	// The SDR's first touch: usually within a few hours, late (days) for a
	// share of leads, fewer for better-fitting ones. The delay comes from a
	// side hash and the draw it replaced stays, so the random stream that
	// shapes the rest of the workspace is unchanged (later times move).
	lateDays := s.intn(1, 6)
	contact := "mql-contact/" + leadID
	if s.side(contact+"/late") < 0.2-0.1*s.fit {
		t = s.workTime(t.AddDate(0, 0, lateDays))
	} else {
		t = t.Add(time.Duration(15+s.side(contact)*165) * time.Minute)
	}
	s.system("crm.contacted", t, map[string]any{"channel": []string{"email", "call"}[s.rng.IntN(2)]})
	if !s.chance(0.35 + 0.55*s.fit) {
		return time.Time{}, false
	}
	t = s.workTime(t.AddDate(0, 0, s.intn(1, 10)))
	oppID := "opp-" + s.account.ID
	s.system("crm.meeting_booked", t, map[string]any{"meeting_at": s.workTime(t.AddDate(0, 0, 3)).Format(time.RFC3339)})
	s.system("crm.sql_accepted", t.Add(time.Hour), map[string]any{"lead_id": leadID, "opportunity_id": oppID})
	s.nextStep(t.Add(time.Hour))
	amount := s.arr
	// The buying committee shows up during evaluation.
	for _, p := range s.people[1:] {
		s.identify(p, s.workTime(t.AddDate(0, 0, s.intn(1, 20))))
		s.emit(Event{Type: "group", UserID: p.id, GroupID: s.account.ID, Timestamp: s.workTime(t.AddDate(0, 0, s.intn(1, 20)))})
	}
	if s.account.Segment == SegmentEnterprise && s.chance(0.6) {
		s.track(champ, "poc_started", s.workTime(t.AddDate(0, 0, s.intn(3, 10))), nil)
		s.track(champ, "poc_completed", s.workTime(t.AddDate(0, 0, s.intn(20, 28))), map[string]any{"outcome": "success"})
	}
	if s.account.Segment != SegmentSMB {
		s.track(s.people[2], "security_review_approved", s.workTime(t.AddDate(0, 0, s.intn(20, 40))), nil)
	}
	prev := ""
	for _, stage := range []string{"discovery", "demo", "proposal", "negotiation"} {
		t = s.workTime(t.AddDate(0, 0, s.intn(3, 21)))
		props := map[string]any{"opportunity_id": oppID, "stage": stage, "amount": amount}
		if prev != "" {
			props["previous_stage"] = prev
		}
		prev = stage
		s.system("crm.opportunity_stage_changed", t, props)
		if stage != "discovery" && !s.chance(0.72+0.25*s.fit) {
			s.system("crm.closed_lost", s.workTime(t.AddDate(0, 0, s.intn(2, 14))), map[string]any{"opportunity_id": oppID, "reason": []string{"no_budget", "competitor", "no_decision"}[s.rng.IntN(3)]})
			return time.Time{}, false
		}
	}
	t = s.workTime(t.AddDate(0, 0, s.intn(2, 14)))
	if !s.system("crm.closed_won", t, map[string]any{"opportunity_id": oppID, "amount": amount, "plan": s.plan}) {
		return time.Time{}, false
	}
	s.kickoff(t)
	return t, true
}

// customer simulates weekly product usage, support, surveys, QBRs and
// renewals from contractStart to now or churn.
func (s *sim) customer(contractStart time.Time) {
	a := &s.account
	h := s.engagement
	// Product users beyond the committee join over time.
	users := append([]person(nil), s.people...)
	// Usage of customers from before the year starts five weeks before it,
	// so that their 30-day measures are warm when the year begins.
	weekStart := contractStart
	if warm := s.start.AddDate(0, 0, -35); weekStart.Before(warm) {
		weekStart = warm
	}
	contractEnd := contractStart.AddDate(1, 0, 0)
	// A collapse either starts months before a renewal within the year and
	// costs it (a score taken 90 days ahead can already see it), or is
	// under way now, ahead of a renewal after now: those accounts are the
	// ones at risk today. Collapses never start in the first 60 days.
	earliest := weekStart.AddDate(0, 0, 60)
	collapseAt := s.now.AddDate(0, 0, -s.intn(60, 150))
	beforeRenewal := s.chance(0.3)
	for end := contractEnd; !end.After(s.now); end = end.AddDate(1, 0, 0) {
		if end.After(earliest) {
			if beforeRenewal {
				collapseAt = end.AddDate(0, 0, -s.intn(100, 200))
			} else if collapseAt.Before(end.AddDate(0, 0, 14)) {
				collapseAt = end.AddDate(0, 0, 14)
			}
			break
		}
	}
	if latest := s.now.AddDate(0, 0, -60); !beforeRenewal && collapseAt.After(latest) {
		collapseAt = latest // under way for two months by now, even across a renewal
	}
	if collapseAt.Before(earliest) {
		collapseAt = earliest
	}
	connected := map[string]bool{}
	var weeks []week
	saveWeeks := 0  // weeks of save play left
	var order []int // indexes into users, the regulars first; users[0] (the champion) leads
	recentUtil := []float64{}
	for w := 0; ; w++ {
		ws := weekStart.AddDate(0, 0, 7*w)
		if ws.After(s.now) {
			return
		}
		switch s.trajectory {
		case "growing":
			h = math.Min(0.97, h+0.008)
		case "collapsing":
			if ws.After(collapseAt) {
				h = math.Max(0.03, h-0.06)
			}
		}
		// Onboarding ramp in the first 6 weeks of a new contract.
		ramp := 1.0
		if since := ws.Sub(contractStart); since < 42*24*time.Hour {
			ramp = 0.3 + 0.7*since.Hours()/(42*24)
		}
		util := math.Max(0, math.Min(1, h*ramp+s.float(-0.08, 0.08)))
		for len(users) < s.seats {
			users = append(users, s.newPerson(len(users), RoleEndUser))
			p := users[len(users)-1]
			at := s.workTime(ws)
			s.identify(p, at)
			s.emit(Event{Type: "group", UserID: p.id, GroupID: a.ID, Timestamp: at.Add(time.Second)})
		}
		active := int(math.Round(util * float64(s.seats)))
		recentUtil = append(recentUtil, float64(active)/float64(s.seats))
		if len(recentUtil) > 12 {
			recentUtil = recentUtil[1:]
		}
		a.Utilization = mean(recentUtil)
		// The active users are mostly the same people week after week (a
		// product's regulars): a stable order, of which the first `active`
		// are active, with one swap a week between regulars and the rest.
		// The champion (users[0], first in the order) is active while usage
		// is healthy and drops out when it shrinks below a third of seats.
		for len(order) < len(users) {
			order = append(order, len(order))
			if j := s.rng.IntN(len(order)); j != 0 {
				order[j], order[len(order)-1] = order[len(order)-1], order[j]
			}
		}
		if active > 1 && active < len(order) {
			i, j := 1+s.rng.IntN(active-1), active+s.rng.IntN(len(order)-active)
			order[i], order[j] = order[j], order[i]
		}
		regulars := order[:active]
		if util < 0.33 && active < len(order) {
			regulars = order[1 : active+1]
		}
		wk := week{users: map[int]bool{}, features: map[string]bool{}}
		for _, k := range regulars {
			// One product event per active user and week keeps the
			// workspace small enough to load and score in seconds.
			f := s.feature(h)
			props := map[string]any(nil)
			if f == "export_run" {
				props = map[string]any{"format": []string{"csv", "pdf"}[s.rng.IntN(2)]}
			}
			if s.track(users[k], f, s.workTime(ws.AddDate(0, 0, s.rng.IntN(5))), props) {
				a.UsageEvents++
				wk.events++
				wk.users[k] = true
				wk.features[f] = true
			}
		}
		if w == 0 && !s.activated {
			s.track(users[0], "setup_completed", s.workTime(ws.AddDate(0, 0, s.intn(1, 4))), nil)
		}
		// Activation comes quickly to engaged accounts and never to some
		// disengaged ones: those raise the onboarding drop-off signal.
		if !s.activated && w < 10 && s.chance(h*0.3) {
			s.activated = true
			s.track(users[0], "activated", s.workTime(ws.AddDate(0, 0, s.rng.IntN(5))), nil)
		}
		// Mid-term upsell when seats run out.
		if w > 0 && w%26 == 0 && mean(recentUtil) > 0.8 && ws.Before(contractEnd.AddDate(0, 0, -60)) {
			s.seats += int(math.Ceil(float64(s.seats) * 0.2))
			s.pickPlan()
			s.contractUpdated(s.workTime(ws.AddDate(0, 0, 2)), contractEnd.AddDate(-1, 0, 0))
		}
		if integrations := len(connected); integrations < 2 && w >= 1+6*integrations && s.chance(h*(1-0.5*float64(integrations))) {
			name := integrationNames[s.rng.IntN(len(integrationNames))]
			if !connected[name] {
				connected[name] = true
				s.track(users[0], vocab.IntegrationConnected, s.workTime(ws.AddDate(0, 0, 2)), map[string]any{"integration": name})
				a.UsageEvents++
			}
		}
		s.support(ws, h, users)
		if w%13 == 6 {
			s.survey(ws, h, users)
			if a.Segment != SegmentSMB && s.chance(0.25+0.5*h) {
				at := s.workTime(ws.AddDate(0, 0, 3))
				s.system("meeting.qbr_held", at, map[string]any{"attendees": s.intn(2, 6), "held_at": at.Format(time.RFC3339)})
			}
		}
		weeks = append(weeks, wk)
		// The save play runs while the account looks troubled and for two
		// weeks after: health's 30-day rules (usage drop, single active
		// user) and band drops open a week or two after the behaviour that
		// causes them, and a team working its risk queue keeps calling an
		// account it was worried about.
		if s.troubled(weeks, h) {
			saveWeeks = 3
		}
		if saveWeeks > 0 {
			s.savePlay(ws)
			saveWeeks--
		}
		// Renewal decision at contract end.
		if !ws.Before(contractEnd) {
			if !s.renew(contractEnd, recentUtil) {
				a.Churned = true
				return
			}
			a.Renewals++
			contractStart = contractEnd
			contractEnd = contractStart.AddDate(1, 0, 0)
		}
	}
}

// week is what an account did in one simulated week.
type week struct {
	events   int
	users    map[int]bool // indexes into the account's users; 0 is the champion
	features map[string]bool
}

// troubled reports whether a risk signal is likely open on the account after
// the latest of weeks: roughly the conditions of health's risk signals
// (docs/health.md, Outputs) over the last four weeks against the four
// before, plus a detractor NPS, an open P1 ticket, or low engagement (which
// drags the score into a worse band).
func (s *sim) troubled(weeks []week, h float64) bool {
	if h < 0.5 || (s.lastNPS >= 0 && s.lastNPS <= 6) || len(s.openP1) > 0 {
		return true
	}
	if len(weeks) < 5 {
		return false // the first weeks of a new contract: health's 30-day rules wait too
	}
	sum := func(ws []week) (events int, users map[int]bool, features map[string]bool) {
		users, features = map[int]bool{}, map[string]bool{}
		for _, w := range ws {
			events += w.events
			for u := range w.users {
				users[u] = true
			}
			for f := range w.features {
				features[f] = true
			}
		}
		return events, users, features
	}
	n := len(weeks)
	events, users, features := sum(weeks[n-4:])
	before, _, _ := sum(weeks[max(0, n-8) : n-4])
	// A short dip (last week well below the four before) is what moves a
	// score across a band boundary, and health reports that as a band drop.
	last, prior := weeks[n-1].events, float64(eventsIn(weeks[n-5:n-1]))/4
	return len(users) <= 1 || len(features) < 3 || !users[0] ||
		(before >= 10 && float64(events) < 0.7*float64(before)) ||
		(prior >= 5 && float64(last) < 0.85*prior)
}

// eventsIn is the number of events of ws.
func eventsIn(ws []week) int {
	n := 0
	for _, w := range ws {
		n += w.events
	}
	return n
}

// savePlay is the CSM working a troubled account: every other day of a
// week in which a risk signal is likely open, the CSM reaches out, as a team
// working its risk queue does, so that risk handoffs can meet their two-day
// SLA. The times come from side hashes, not from the random stream.
func (s *sim) savePlay(ws time.Time) {
	for _, d := range []int{0, 2, 4, 6} {
		key := fmt.Sprintf("save/%s/%d", ws.Format("2006-01-02"), d)
		at := ws.AddDate(0, 0, d).Truncate(24 * time.Hour).Add(time.Duration(9*60+s.side(key)*8*60) * time.Minute)
		s.system("crm.contacted", at, map[string]any{"channel": []string{"call", "email"}[int(s.side(key+"/ch")*2)], "purpose": "risk"})
	}
}

func (s *sim) support(ws time.Time, h float64, users []person) {
	if !s.chance(0.05 + 0.12*(1-h)) {
		return
	}
	s.tickets++
	id := fmt.Sprintf("T-%s-%d", s.account.ID, s.tickets)
	prio := "p3"
	switch r := s.rng.Float64(); {
	case r < 0.05+0.2*(1-h):
		prio = "p1"
	case r < 0.3:
		prio = "p2"
	case r > 0.85:
		prio = "p4"
	}
	opened := s.workTime(ws.AddDate(0, 0, s.rng.IntN(5)))
	s.system("support.ticket_opened", opened, map[string]any{"ticket_id": id, "priority": prio, "user_id": users[s.rng.IntN(len(users))].id})
	if prio == "p1" && h < 0.4 && s.chance(0.6) {
		s.openP1[id] = true
		return
	}
	s.system("support.ticket_resolved", opened.Add(time.Duration(s.intn(2, 120))*time.Hour), map[string]any{"ticket_id": id, "priority": prio})
}

func (s *sim) survey(ws time.Time, h float64, users []person) {
	for range s.intn(1, 2) {
		p := users[s.rng.IntN(len(users))]
		score := int(math.Round(math.Max(0, math.Min(10, 2+h*9+s.float(-2, 2)))))
		s.lastNPS = score
		s.track(p, "survey.nps", s.workTime(ws.AddDate(0, 0, s.rng.IntN(5))), map[string]any{"score": score})
	}
}

// renew decides a renewal from recent behaviour and emits the billing events.
func (s *sim) renew(end time.Time, recentUtil []float64) bool {
	s.renewalCalls(end)
	util := mean(recentUtil)
	p := 0.02 + math.Pow(1-util, 3)
	if s.lastNPS >= 0 && s.lastNPS <= 6 {
		p += 0.12
	}
	p += 0.15 * float64(len(s.openP1))
	p = math.Min(0.95, p)
	at := s.workTime(end)
	if s.chance(p) {
		s.system("billing.churned", at, map[string]any{"arr": s.arr, "reason": []string{"low_adoption", "budget", "switched_vendor"}[s.rng.IntN(3)]})
		return false
	}
	if util > 0.8 {
		s.seats += int(math.Ceil(float64(s.seats) * s.float(0.1, 0.4)))
	}
	s.pickPlan()
	s.system("billing.renewed", at, map[string]any{"arr": s.arr, "seats": s.seats, "contract_end": day(end.AddDate(1, 0, 0))})
	s.contractUpdated(at.Add(time.Minute), end)
	return true
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// featureWeights are the shares of the product features, from the most to
// the least common, in the order of the vocabulary's features
// (vocab.Features); a feature beyond them gets the last share.
var featureWeights = []float64{0.35, 0.25, 0.2, 0.1, 0.06, 0.04}

type weighted struct {
	name   string
	weight float64
}

// featureMix lists the vocabulary's product features (vocab.Features) from
// the most to the least common, so the demo uses every name health and the
// journey templates count as a feature and no other.
var featureMix = func() []weighted {
	var out []weighted
	for i, f := range vocab.Features() {
		out = append(out, weighted{f, featureWeights[min(i, len(featureWeights)-1)]})
	}
	return out
}()

// integrationNames are the integrations an account connects (the "integration"
// property of vocab.IntegrationConnected).
var integrationNames = []string{"salesforce", "hubspot", "slack", "snowflake"}

// feature draws a product feature event. Breadth follows engagement h:
// disengaged accounts stick to the first one or two features, engaged ones
// use all of them, so feature adoption predicts churn as it does in life.
// h < 0 means any feature (trial usage).
func (s *sim) feature(h float64) string {
	k := len(featureMix)
	if h >= 0 {
		k = min(len(featureMix), 1+int(h*float64(len(featureMix))))
	}
	total := 0.0
	for _, f := range featureMix[:k] {
		total += f.weight
	}
	r := s.rng.Float64() * total
	for _, f := range featureMix[:k] {
		if r < f.weight {
			return f.name
		}
		r -= f.weight
	}
	return featureMix[k-1].name
}
