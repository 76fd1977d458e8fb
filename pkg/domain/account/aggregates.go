// Package account keeps bounded, incrementally updated aggregates per
// (workspace, account) and evaluates CEL criteria over them.
//
// Both the stages service (journey criteria) and the health service (score
// components) build on it: they apply every ingestion event of an account to
// its Aggregates, persist the result with Marshal, and evaluate compiled
// programs at an evaluation time that is passed in, never read from a clock.
package account

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// Storage bounds. They keep one account's aggregates to a few kilobytes
// whatever the account sends.
const (
	// KeepDays is how many daily buckets of event counts are kept.
	KeepDays = 400
	// KeepUserDays is how many recent days keep their distinct active user ids.
	KeepUserDays = 120
	// MaxUsersPerDay caps the active user ids stored for one day.
	MaxUsersPerDay = 1000
	// MaxEventNames caps the distinct event names tracked per account.
	MaxEventNames = 1000
	// MaxUsers caps the users tracked per account.
	MaxUsers = 5000
	// MaxTickets caps the open support tickets tracked per account.
	MaxTickets = 1000
	// MaxIntegrations caps the integrations tracked per account.
	MaxIntegrations = 200
	// MaxTraits caps the free-form account traits kept.
	MaxTraits = 64
	// MaxFeatures caps the product features, email domains and departments
	// tracked per account.
	MaxFeatures = 512
	// maxTierUses is how many recent uses of one higher-tier feature are kept.
	maxTierUses = 10
	// MaxOutcomes caps the commercial outcomes kept (the newest win).
	MaxOutcomes = 256
	// MaxARRChanges caps the ARR changes kept (the newest win): five years
	// of monthly changes.
	MaxARRChanges = 64
	// maxTraitLen truncates trait values so one large trait cannot bloat state.
	maxTraitLen = 256
)

// Outcome kinds recorded for health backtests.
const (
	// OutcomeRenewed is recorded for billing.renewed.
	OutcomeRenewed = "renewed"
	// OutcomeChurned is recorded for billing.churned.
	OutcomeChurned = "churned"
	// OutcomeExpanded is recorded when the seat count rises.
	OutcomeExpanded = "expanded"
)

// Synthetic event names recorded by Apply so that criteria can count changes
// that no single event names.
const (
	// EventSeatsIncreased is recorded when a contract update raises the seat count.
	EventSeatsIncreased = "$seats_increased"
	// EventPlanChanged is recorded when the plan changes from one known plan to another.
	EventPlanChanged = "$plan_changed"
	// EventAny names every event in count, trend and days_since.
	EventAny = "*"
)

// Reserved event names from the ingestion contract (docs/events.md).
const (
	eventContractUpdated     = "billing.contract_updated"
	eventSubscriptionStarted = "billing.subscription_started"
	eventRenewed             = "billing.renewed"
	eventNPS                 = "survey.nps"
	eventTicketOpened        = "support.ticket_opened"
	eventTicketResolved      = "support.ticket_resolved"
	eventTicketClosed        = "support.ticket_closed"
	eventChurned             = "billing.churned"
	eventIntegrationOn       = "integration.connected"
	eventIntegrationOff      = "integration.disconnected"
)

// Personas of a buying committee, derived from identify traits.
const (
	PersonaChampion      = "champion"
	PersonaEconomicBuyer = "economic_buyer"
	PersonaITSecurity    = "it_security"
	PersonaProcurement   = "procurement"
	PersonaEndUser       = "end_user"
)

// Personas lists every persona in display order.
func Personas() []string {
	return []string{PersonaChampion, PersonaEconomicBuyer, PersonaITSecurity, PersonaProcurement, PersonaEndUser}
}

// Config says how a definition reads events. It is part of both applying
// events (activity, integrations) and evaluating (features).
type Config struct {
	// Features are the event names that count as product features.
	Features []string
	// IntegrationEvents are event names meaning an integration was connected;
	// the integration's name is the "integration" property, else the event name.
	IntegrationEvents []string
	// ActivityEvents are event names meaning a user was active; empty means any
	// track, page or screen event from the product source.
	ActivityEvents []string
}

// Day is one UTC day of activity.
type Day struct {
	// Day is the number of days since the Unix epoch (UTC).
	Day int32
	// Counts is the number of events per name that day.
	Counts map[string]int32
	// Users are the distinct active user ids, sorted; emptied after KeepUserDays.
	Users []string
	// Total is the number of events of any name that day.
	Total int32
	// Product is the number of product events that day: pages, screens and
	// product-source tracks other than the reserved billing, support, survey
	// and integration events. count("", w) and trend("", w) read it.
	Product int32
}

// Span is the first and last time an event was seen, in Unix seconds.
type Span struct {
	// First is when the event was first seen.
	First int64
	// Last is when the event was last seen.
	Last int64
}

// User is one person seen on the account.
type User struct {
	// ID is the Segment userId.
	ID string
	// EmailDomain is the domain part of the email trait, lower-cased.
	EmailDomain string
	// Department comes from the department trait.
	Department string
	// Title comes from the title trait.
	Title string
	// Role comes from the role trait.
	Role string
	// Persona comes from the persona trait, if set explicitly.
	Persona string
	// FirstSeen is when the user was first seen, in Unix seconds.
	FirstSeen int64
	// LastSeen is when the user last sent any event, in Unix seconds.
	LastSeen int64
}

// Outcome is a commercial outcome (renewal, churn, expansion).
type Outcome struct {
	// Kind is OutcomeRenewed, OutcomeChurned or OutcomeExpanded.
	Kind string
	// At is the event time in Unix seconds.
	At int64
}

// ARRChange is the ARR a contract event set, and when.
type ARRChange struct {
	// At is the event time in Unix seconds.
	At int64
	// ARR is the annual recurring revenue from then on.
	ARR float64
}

// Ticket is one open support ticket.
type Ticket struct {
	// Priority is e.g. "p1"; lower-cased.
	Priority string
	// OpenedAt is in Unix seconds.
	OpenedAt int64
}

// Aggregates is the bounded state of one account.
type Aggregates struct {
	// Workspace is the tenant.
	Workspace string
	// AccountID is the account.
	AccountID string
	// Days holds daily buckets in ascending order.
	Days []Day
	// Events is the first/last time of each event name.
	Events map[string]Span
	// Users by id.
	Users map[string]*User
	// Integrations maps an integration name to when it was connected (Unix seconds).
	Integrations map[string]int64
	// Traits holds string account traits: name, plan, segment, owner, industry...
	Traits map[string]string
	// Seats purchased.
	Seats int64
	// ARR is the annual recurring revenue.
	ARR float64
	// CreatedAt, ContractStart and ContractEnd are Unix seconds; 0 means unknown.
	CreatedAt, ContractStart, ContractEnd int64
	// NPS is the latest score, -1 when none.
	NPS int32
	// NPSAt is when the latest NPS was given.
	NPSAt int64
	// Tickets are the open support tickets by ticket id.
	Tickets map[string]Ticket
	// FirstEventAt and LastEventAt bound the event times seen (Unix seconds).
	FirstEventAt, LastEventAt int64

	// Features maps a product feature (a product track's name, or its
	// "feature" property) to its last use (Unix seconds).
	Features map[string]int64
	// HigherTier holds the last uses of features whose "tier" property names
	// another tier than the account's plan.
	HigherTier map[string][]int64
	// Domains and Departments map each users' email domain or department
	// (lower-cased) to when it first appeared (Unix seconds).
	Domains, Departments map[string]int64
	// Outcomes are renewals, churns and expansions, oldest first.
	Outcomes []Outcome
	// ARRHistory is every change of ARR the contract events carried,
	// oldest first (the newest MaxARRChanges), so that revenue retention
	// can read an account's ARR on any day (ARRAt).
	ARRHistory []ARRChange
	// UsageLimit is the plan's monthly product-event allowance (trait or
	// billing property usage_limit); 0 means none.
	UsageLimit float64
	// ChampionID is the user named by the group trait champion_user_id.
	ChampionID string
}

// New returns empty aggregates for an account.
func New(workspace, accountID string) *Aggregates {
	return &Aggregates{
		Workspace:    workspace,
		AccountID:    accountID,
		Events:       map[string]Span{},
		Users:        map[string]*User{},
		Integrations: map[string]int64{},
		Traits:       map[string]string{},
		Tickets:      map[string]Ticket{},
		Features:     map[string]int64{},
		HigherTier:   map[string][]int64{},
		Domains:      map[string]int64{},
		Departments:  map[string]int64{},
		NPS:          -1,
	}
}

// EventTime is the time an event is applied at: its timestamp, else its
// received time.
func EventTime(e *ingestionv1.Event) time.Time {
	if ts := e.GetTimestamp(); ts != nil && (ts.Seconds != 0 || ts.Nanos != 0) {
		return ts.AsTime()
	}
	if ts := e.GetReceivedAt(); ts != nil {
		return ts.AsTime()
	}
	return time.Unix(0, 0).UTC()
}

// DayOf returns the UTC day number of t.
func DayOf(t time.Time) int32 { return dayOfUnix(t.Unix()) }

func dayOfUnix(sec int64) int32 {
	d := sec / 86400
	if sec < 0 && sec%86400 != 0 {
		d--
	}
	return int32(d)
}

// EventName is the name an event is counted under: the track event, or the
// page/screen name (prefixed "page:"/"screen:" so they cannot collide).
// Identify, group and alias calls have no name.
func EventName(e *ingestionv1.Event) string {
	switch e.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_TRACK:
		return e.GetEvent()
	case ingestionv1.EventType_EVENT_TYPE_PAGE:
		if e.GetName() == "" {
			return "page"
		}
		return "page:" + e.GetName()
	case ingestionv1.EventType_EVENT_TYPE_SCREEN:
		if e.GetName() == "" {
			return "screen"
		}
		return "screen:" + e.GetName()
	}
	return ""
}

// Apply folds one event into the aggregates. It is deterministic: the same
// events in the same order give the same state.
func (a *Aggregates) Apply(e *ingestionv1.Event, cfg *Config) {
	a.ensureMaps()
	t := EventTime(e).Unix()
	if a.FirstEventAt == 0 || t < a.FirstEventAt {
		a.FirstEventAt = t
	}
	if t > a.LastEventAt {
		a.LastEventAt = t
	}
	uid := e.GetUserId()
	var u *User
	if uid != "" {
		u = a.user(uid, t)
	}
	switch e.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_IDENTIFY:
		if u != nil {
			applyUserTraits(u, e.GetTraits())
		}
		a.applyUserFacts(e.GetTraits(), t)
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		a.applyAccountTraits(e.GetTraits(), t)
	case ingestionv1.EventType_EVENT_TYPE_TRACK, ingestionv1.EventType_EVENT_TYPE_PAGE, ingestionv1.EventType_EVENT_TYPE_SCREEN:
		name := EventName(e)
		if name == "" {
			break
		}
		// A contract event older than one already applied (a backfill, a
		// late delivery) must not overwrite the newer contract: the state
		// is the one the newest event by event time set.
		stale := isContractEvent(name) && t < a.lastContractEvent()
		a.record(name, t)
		if uid != "" && isActivity(e, name, cfg) {
			a.addActiveUser(dayOfUnix(t), uid)
		}
		a.applyReserved(e, name, t, cfg, stale)
		a.applyProduct(e, name, t)
	}
	a.prune()
}

func (a *Aggregates) ensureMaps() {
	if a.Events == nil {
		a.Events = map[string]Span{}
	}
	if a.Users == nil {
		a.Users = map[string]*User{}
	}
	if a.Integrations == nil {
		a.Integrations = map[string]int64{}
	}
	if a.Traits == nil {
		a.Traits = map[string]string{}
	}
	if a.Tickets == nil {
		a.Tickets = map[string]Ticket{}
	}
	if a.Features == nil {
		a.Features = map[string]int64{}
	}
	if a.HigherTier == nil {
		a.HigherTier = map[string][]int64{}
	}
	if a.Domains == nil {
		a.Domains = map[string]int64{}
	}
	if a.Departments == nil {
		a.Departments = map[string]int64{}
	}
}

func (a *Aggregates) user(id string, t int64) *User {
	u, ok := a.Users[id]
	if !ok {
		if len(a.Users) >= MaxUsers {
			return nil
		}
		u = &User{ID: id, FirstSeen: t, LastSeen: t}
		a.Users[id] = u
	}
	if t < u.FirstSeen {
		u.FirstSeen = t
	}
	if t > u.LastSeen {
		u.LastSeen = t
	}
	return u
}

func isActivity(e *ingestionv1.Event, name string, cfg *Config) bool {
	if cfg != nil && len(cfg.ActivityEvents) > 0 {
		return contains(cfg.ActivityEvents, name)
	}
	src := e.GetSource()
	return src == "" || src == "product"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// dayIndex returns the index of day d in a.Days, inserting an empty bucket
// when absent.
func (a *Aggregates) dayIndex(d int32) int {
	i := sort.Search(len(a.Days), func(i int) bool { return a.Days[i].Day >= d })
	if i < len(a.Days) && a.Days[i].Day == d {
		return i
	}
	a.Days = append(a.Days, Day{})
	copy(a.Days[i+1:], a.Days[i:])
	a.Days[i] = Day{Day: d, Counts: map[string]int32{}}
	return i
}

// record counts one occurrence of name at t.
func (a *Aggregates) record(name string, t int64) {
	sp, ok := a.Events[name]
	if !ok {
		if len(a.Events) >= MaxEventNames {
			return
		}
		sp = Span{First: t, Last: t}
	}
	if t < sp.First {
		sp.First = t
	}
	if t > sp.Last {
		sp.Last = t
	}
	a.Events[name] = sp
	i := a.dayIndex(dayOfUnix(t))
	if a.Days[i].Counts == nil {
		a.Days[i].Counts = map[string]int32{}
	}
	a.Days[i].Counts[name]++
	a.Days[i].Total++
}

func (a *Aggregates) addActiveUser(d int32, uid string) {
	if a.LastEventAt != 0 && d <= dayOfUnix(a.LastEventAt)-KeepUserDays {
		return
	}
	i := a.dayIndex(d)
	users := a.Days[i].Users
	j := sort.SearchStrings(users, uid)
	if j < len(users) && users[j] == uid {
		return
	}
	if len(users) >= MaxUsersPerDay {
		return
	}
	users = append(users, "")
	copy(users[j+1:], users[j:])
	users[j] = uid
	a.Days[i].Users = users
}

func (a *Aggregates) applyReserved(e *ingestionv1.Event, name string, t int64, cfg *Config, stale bool) {
	props := e.GetProperties()
	switch name {
	case eventContractUpdated, eventSubscriptionStarted, eventRenewed:
		if stale {
			if name == eventRenewed {
				a.addOutcome(OutcomeRenewed, t)
			}
			if v, ok := number(props, "arr"); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				a.addARRChange(t, v)
			}
			break
		}
		if v, ok := number(props, "seats"); ok && v >= 0 && v < math.MaxInt32 {
			seats := int64(v)
			if a.Seats > 0 && seats > a.Seats {
				a.record(EventSeatsIncreased, t)
				a.addOutcome(OutcomeExpanded, t)
			}
			a.Seats = seats
		}
		if v, ok := number(props, "arr"); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			a.ARR = v
			a.addARRChange(t, v)
		}
		if p := str(props, "plan"); p != "" {
			a.setPlan(p, t)
		}
		if v, ok := timeValue(props, "contract_start"); ok {
			a.ContractStart = v
		}
		if v, ok := timeValue(props, "contract_end"); ok {
			a.ContractEnd = v
		}
		if v, ok := number(props, "usage_limit"); ok && v >= 0 && !math.IsInf(v, 0) {
			a.UsageLimit = v
		}
		if name == eventRenewed {
			a.addOutcome(OutcomeRenewed, t)
		}
	case eventChurned:
		a.addOutcome(OutcomeChurned, t)
	case eventIntegrationOn:
		if in := str(props, "integration"); in != "" {
			if _, ok := a.Integrations[in]; ok || len(a.Integrations) < MaxIntegrations {
				a.Integrations[in] = t
			}
		}
	case eventIntegrationOff:
		delete(a.Integrations, str(props, "integration"))
	case eventNPS:
		if v, ok := number(props, "score"); ok && v >= 0 && v <= 10 && t >= a.NPSAt {
			a.NPS = int32(v)
			a.NPSAt = t
		}
	case eventTicketOpened:
		id := str(props, "ticket_id")
		if id == "" {
			break
		}
		if _, ok := a.Tickets[id]; ok || len(a.Tickets) < MaxTickets {
			a.Tickets[id] = Ticket{Priority: strings.ToLower(str(props, "priority")), OpenedAt: t}
		}
	case eventTicketResolved, eventTicketClosed:
		delete(a.Tickets, str(props, "ticket_id"))
	}
	if cfg != nil && contains(cfg.IntegrationEvents, name) {
		in := str(props, "integration")
		if in == "" {
			in = name
		}
		if _, ok := a.Integrations[in]; !ok && len(a.Integrations) < MaxIntegrations {
			a.Integrations[in] = t
		}
	}
}

// contractEvents set the contract's seats, ARR, plan and dates.
var contractEvents = []string{eventContractUpdated, eventSubscriptionStarted, eventRenewed}

func isContractEvent(name string) bool {
	return name == eventContractUpdated || name == eventSubscriptionStarted || name == eventRenewed
}

// lastContractEvent is the event time of the newest contract event applied
// so far (0 when none).
func (a *Aggregates) lastContractEvent() int64 {
	var last int64
	for _, n := range contractEvents {
		if sp, ok := a.Events[n]; ok && sp.Last > last {
			last = sp.Last
		}
	}
	return last
}

// isReservedTrack reports whether a track event is one of the reserved
// commercial events (billing, support, survey, integration), which are facts
// about the account rather than product use.
func isReservedTrack(name string) bool {
	switch name {
	case eventNPS, eventTicketOpened, eventTicketResolved, eventTicketClosed, eventIntegrationOn, eventIntegrationOff:
		return true
	}
	return strings.HasPrefix(name, "billing.")
}

// applyProduct counts product use: every page and screen, and product-source
// tracks that are not reserved events. A track's feature is its "feature"
// property, else its name.
func (a *Aggregates) applyProduct(e *ingestionv1.Event, name string, t int64) {
	if e.GetType() == ingestionv1.EventType_EVENT_TYPE_TRACK {
		if isReservedTrack(name) {
			return
		}
		if src := e.GetSource(); src != "" && src != "product" {
			return
		}
	}
	i := a.dayIndex(dayOfUnix(t))
	a.Days[i].Product++
	if e.GetType() != ingestionv1.EventType_EVENT_TYPE_TRACK {
		return
	}
	props := e.GetProperties()
	feature := name
	if f := str(props, "feature"); f != "" {
		feature = clip(f)
	}
	if last, ok := a.Features[feature]; ok || len(a.Features) < MaxFeatures {
		if !ok || t > last {
			a.Features[feature] = t
		}
	}
	if tier := str(props, "tier"); tier != "" && tier != a.Traits["plan"] {
		uses, ok := a.HigherTier[feature]
		if !ok && len(a.HigherTier) >= MaxFeatures {
			return
		}
		uses = append(uses, t)
		if len(uses) > maxTierUses {
			uses = append(uses[:0], uses[len(uses)-maxTierUses:]...)
		}
		a.HigherTier[feature] = uses
	}
}

// addOutcome records a commercial outcome, dropping the oldest beyond MaxOutcomes.
func (a *Aggregates) addOutcome(kind string, t int64) {
	a.Outcomes = append(a.Outcomes, Outcome{Kind: kind, At: t})
	if len(a.Outcomes) > MaxOutcomes {
		a.Outcomes = append(a.Outcomes[:0], a.Outcomes[len(a.Outcomes)-MaxOutcomes:]...)
	}
}

// addARRChange records that the ARR became arr at t, in event-time order
// (a late contract event, which does not change the current ARR, still
// dates what the ARR was back then), unless the change before it already
// set arr; it drops the oldest beyond MaxARRChanges.
func (a *Aggregates) addARRChange(t int64, arr float64) {
	i := sort.Search(len(a.ARRHistory), func(i int) bool { return a.ARRHistory[i].At > t })
	if i > 0 && a.ARRHistory[i-1].ARR == arr {
		return
	}
	a.ARRHistory = slices.Insert(a.ARRHistory, i, ARRChange{At: t, ARR: arr})
	if len(a.ARRHistory) > MaxARRChanges {
		a.ARRHistory = append(a.ARRHistory[:0], a.ARRHistory[len(a.ARRHistory)-MaxARRChanges:]...)
	}
}

// ARRAt is the ARR at Unix time t: that of the latest change at or before
// t, or 0 before the first one.
func (a *Aggregates) ARRAt(t int64) float64 {
	arr := 0.0
	for _, c := range a.ARRHistory {
		if c.At > t {
			break
		}
		arr = c.ARR
	}
	return arr
}

// applyUserFacts records when each email domain and department first
// appeared among the account's users (expansion signals read them).
func (a *Aggregates) applyUserFacts(s *structpb.Struct, t int64) {
	if email := str(s, "email"); email != "" {
		if at := strings.LastIndexByte(email, '@'); at >= 0 && at+1 < len(email) {
			firstSeen(a.Domains, clip(strings.ToLower(email[at+1:])), t)
		}
	}
	if dep := str(s, "department"); dep != "" {
		firstSeen(a.Departments, clip(strings.ToLower(dep)), t)
	}
}

func firstSeen(m map[string]int64, k string, t int64) {
	if old, ok := m[k]; ok {
		if t < old {
			m[k] = t
		}
		return
	}
	if len(m) < MaxFeatures {
		m[k] = t
	}
}

func (a *Aggregates) setPlan(p string, t int64) {
	p = clip(p)
	if old := a.Traits["plan"]; old != "" && old != p {
		a.record(EventPlanChanged, t)
	}
	a.Traits["plan"] = p
}

// accountTraitKeys are group traits kept as strings.
var accountTraitKeys = [...]string{"name", "segment", "owner", "industry", "tier", "region"}

func (a *Aggregates) applyAccountTraits(s *structpb.Struct, t int64) {
	if s == nil {
		return
	}
	for _, k := range accountTraitKeys {
		if v := str(s, k); v != "" {
			a.Traits[k] = clip(v)
		}
	}
	if p := str(s, "plan"); p != "" {
		a.setPlan(p, t)
	}
	if v, ok := number(s, "seats"); ok && v >= 0 && v < math.MaxInt32 {
		if a.Seats > 0 && int64(v) > a.Seats {
			a.addOutcome(OutcomeExpanded, t)
		}
		a.Seats = int64(v)
	}
	if v, ok := number(s, "usage_limit"); ok && v >= 0 && !math.IsInf(v, 0) {
		a.UsageLimit = v
	}
	if v, ok := timeValue(s, "contract_end"); ok {
		a.ContractEnd = v
	}
	if id := str(s, "champion_user_id"); id != "" {
		a.ChampionID = clip(id)
	}
	if v, ok := number(s, "arr"); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		a.ARR = v
	}
	for _, k := range []string{"created_at", "createdAt"} {
		if v, ok := timeValue(s, k); ok {
			a.CreatedAt = v
			break
		}
	}
	// Other string traits are kept too, so that criteria can read them with
	// trait(); the cap keeps state bounded.
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := a.Traits[k]; !ok && len(a.Traits) >= MaxTraits {
			continue
		}
		if v, ok := s.GetFields()[k].GetKind().(*structpb.Value_StringValue); ok && len(k) <= 64 {
			a.Traits[k] = clip(v.StringValue)
		}
	}
}

func applyUserTraits(u *User, s *structpb.Struct) {
	if s == nil {
		return
	}
	if email := str(s, "email"); email != "" {
		if at := strings.LastIndexByte(email, '@'); at >= 0 {
			u.EmailDomain = clip(strings.ToLower(email[at+1:]))
		}
	}
	if v := str(s, "department"); v != "" {
		u.Department = clip(v)
	}
	if v := str(s, "title"); v != "" {
		u.Title = clip(v)
	}
	if v := str(s, "role"); v != "" {
		u.Role = clip(v)
	}
	if v := str(s, "persona"); v != "" {
		u.Persona = clip(v)
	}
}

// PersonaOf derives a user's buying-committee persona: an explicit persona
// trait wins, then keywords in role, title and department.
func PersonaOf(u *User) string {
	if p := normalizePersona(u.Persona); p != "" {
		return p
	}
	if p := normalizePersona(u.Role); p != "" {
		return p
	}
	text := strings.ToLower(u.Role + " " + u.Title + " " + u.Department)
	switch {
	case hasAny(text, "security", "infosec", "ciso", "it ", " it", "compliance"):
		return PersonaITSecurity
	case hasAny(text, "procurement", "purchasing", "sourcing", "vendor management"):
		return PersonaProcurement
	case hasAny(text, "cfo", "ceo", "coo", "chief", "vp", "vice president", "finance", "budget"):
		return PersonaEconomicBuyer
	case hasAny(text, "champion"):
		return PersonaChampion
	}
	return PersonaEndUser
}

// personaSeparators turns "Economic Buyer" or "it-security" into snake case.
var personaSeparators = strings.NewReplacer(" ", "_", "-", "_", "/", "_")

func normalizePersona(s string) string {
	if s == "" {
		return ""
	}
	s = personaSeparators.Replace(strings.ToLower(strings.TrimSpace(s)))
	switch s {
	case "champion":
		return PersonaChampion
	case "economic_buyer", "buyer", "decision_maker":
		return PersonaEconomicBuyer
	case "it_security", "security", "it":
		return PersonaITSecurity
	case "procurement":
		return PersonaProcurement
	case "end_user", "user":
		return PersonaEndUser
	}
	return ""
}

func hasAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// prune drops buckets older than KeepDays and user ids older than
// KeepUserDays, both relative to the newest event seen.
func (a *Aggregates) prune() {
	last := dayOfUnix(a.LastEventAt)
	cut := 0
	for cut < len(a.Days) && a.Days[cut].Day <= last-KeepDays {
		cut++
	}
	if cut > 0 {
		a.Days = append(a.Days[:0], a.Days[cut:]...)
	}
	for i := range a.Days {
		if a.Days[i].Day > last-KeepUserDays {
			break
		}
		a.Days[i].Users = nil
	}
}

// ForgetUser removes a user's identity and activity (right to be forgotten).
func (a *Aggregates) ForgetUser(id string) {
	delete(a.Users, id)
	for i := range a.Days {
		users := a.Days[i].Users
		j := sort.SearchStrings(users, id)
		if j < len(users) && users[j] == id {
			a.Days[i].Users = append(users[:j], users[j+1:]...)
		}
	}
}

// Trait returns an account trait: the string traits, or "seats"/"arr" formatted.
func (a *Aggregates) Trait(name string) string { return a.Traits[name] }

func clip(s string) string {
	if len(s) > maxTraitLen {
		return s[:maxTraitLen]
	}
	return s
}

func str(s *structpb.Struct, key string) string {
	v, ok := s.GetFields()[key]
	if !ok {
		return ""
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
	}
	return ""
}

func number(s *structpb.Struct, key string) (float64, bool) {
	v, ok := s.GetFields()[key]
	if !ok {
		return 0, false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return k.NumberValue, true
	case *structpb.Value_StringValue:
		f, err := strconv.ParseFloat(strings.TrimSpace(k.StringValue), 64)
		return f, err == nil
	}
	return 0, false
}

// timeValue reads a time as RFC 3339, a date "2006-01-02", or Unix seconds.
func timeValue(s *structpb.Struct, key string) (int64, bool) {
	v, ok := s.GetFields()[key]
	if !ok {
		return 0, false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if k.NumberValue <= 0 || k.NumberValue > 1e11 {
			return 0, false
		}
		return int64(k.NumberValue), true
	case *structpb.Value_StringValue:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, k.StringValue); err == nil {
				return t.Unix(), true
			}
		}
	}
	return 0, false
}
