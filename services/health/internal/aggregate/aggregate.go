// Package aggregate folds an account's ingestion events into the running
// figures that health measures and signals read (active users, features,
// tickets, NPS, contract data, outcomes...). It is pure: it neither reads
// clocks nor touches storage; callers pass event time and evaluation time.
//
// The stages engineer's pkg/account was not available when this service was
// written, so health keeps this minimal aggregate of its own.
package aggregate

import (
	"sort"
	"strconv"
	"strings"
	"time"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// Bounds keep one noisy account from growing without limit.
const (
	// KeepDays is how many days of daily counts are retained; 61 covers a
	// 30-day trend against the 30 days before, plus today.
	KeepDays = 62
	// MaxUsers caps tracked users per account.
	MaxUsers = 10000
	// MaxNames caps distinct event names tracked per account.
	MaxNames = 512
	// MaxTickets caps open tickets tracked per account.
	MaxTickets = 4096
)

// Outcome kinds recorded for backtests.
const (
	OutcomeRenewed  = "renewed"
	OutcomeChurned  = "churned"
	OutcomeExpanded = "expanded"
)

// Aggregate is one account's folded history.
type Aggregate struct {
	// Workspace and Account identify the account.
	Workspace string `json:"w"`
	Account   string `json:"a"`
	// CreatedAt is the earliest event time seen (or a created_at trait).
	CreatedAt time.Time `json:"c"`
	// LastEventAt is the latest event time seen.
	LastEventAt time.Time `json:"l"`
	// Traits are the latest group traits, stringified.
	Traits map[string]string `json:"t,omitempty"`
	// Seats is the number of paid seats.
	Seats int `json:"s,omitempty"`
	// ARR is the annual recurring revenue.
	ARR float64 `json:"r,omitempty"`
	// Plan and Segment come from traits or billing events.
	Plan    string `json:"p,omitempty"`
	Segment string `json:"g,omitempty"`
	// ContractEnd is the current contract's end.
	ContractEnd time.Time `json:"ce,omitempty"`
	// UsageLimit is the plan's monthly product-event allowance (trait usage_limit); 0 = none.
	UsageLimit float64 `json:"ul,omitempty"`
	// Users are known users by id.
	Users map[string]*User `json:"u,omitempty"`
	// Features maps a feature (product event name or properties.feature) to its last use.
	Features map[string]time.Time `json:"f,omitempty"`
	// HigherTier holds recent uses of features marked with a tier other than the plan's.
	HigherTier map[string][]time.Time `json:"ht,omitempty"`
	// LastByName is the last time each event name was seen.
	LastByName map[string]time.Time `json:"n,omitempty"`
	// Days holds daily event counts, oldest first.
	Days []Day `json:"d,omitempty"`
	// Tickets are the open support tickets by id.
	Tickets map[string]Ticket `json:"k,omitempty"`
	// NPS is the latest NPS answer, -1 when none.
	NPS float64 `json:"nps"`
	// Integrations are the connected integrations.
	Integrations map[string]time.Time `json:"i,omitempty"`
	// Domains and Departments record when each email domain or department first appeared.
	Domains     map[string]time.Time `json:"dm,omitempty"`
	Departments map[string]time.Time `json:"dp,omitempty"`
	// Outcomes are renewals, churns and expansions, oldest first.
	Outcomes []Outcome `json:"o,omitempty"`
}

// User is one person on the account.
type User struct {
	// FirstSeen and LastSeen bound the user's product activity.
	FirstSeen time.Time `json:"f"`
	LastSeen  time.Time `json:"l"`
	// Champion is set by the identify trait role=champion or the group trait champion_user_id.
	Champion bool `json:"c,omitempty"`
}

// Day counts events of one UTC day.
type Day struct {
	// Day is days since the Unix epoch.
	Day int64 `json:"d"`
	// Product counts product events (track, page, screen).
	Product int `json:"p"`
	// Named counts events by name.
	Named map[string]int `json:"n,omitempty"`
}

// Ticket is an open support ticket.
type Ticket struct {
	// Priority is lower-case, e.g. "p1".
	Priority string `json:"p"`
	// OpenedAt is the event time of opening.
	OpenedAt time.Time `json:"o"`
}

// Outcome is a commercial outcome used by backtests.
type Outcome struct {
	// Kind is OutcomeRenewed, OutcomeChurned or OutcomeExpanded.
	Kind string `json:"k"`
	// At is the event time.
	At time.Time `json:"a"`
}

// New returns an empty aggregate.
func New(workspace, account string) *Aggregate {
	return &Aggregate{Workspace: workspace, Account: account, NPS: -1}
}

// EventTime is the time rules use for an event: its corrected timestamp, else arrival.
func EventTime(ev *ingestionv1.Event) time.Time {
	if ev.GetTimestamp() != nil {
		return ev.GetTimestamp().AsTime()
	}
	return ev.GetReceivedAt().AsTime()
}

// Apply folds one event in. It never fails: unknown shapes are counted as
// plain activity and malformed properties are ignored.
func (a *Aggregate) Apply(ev *ingestionv1.Event) {
	at := EventTime(ev).UTC()
	if a.CreatedAt.IsZero() || at.Before(a.CreatedAt) {
		a.CreatedAt = at
	}
	if at.After(a.LastEventAt) {
		a.LastEventAt = at
	}
	props := ev.GetProperties().GetFields()
	switch ev.GetType() {
	case ingestionv1.EventType_EVENT_TYPE_GROUP:
		a.applyTraits(ev.GetTraits().GetFields(), at)
		return
	case ingestionv1.EventType_EVENT_TYPE_IDENTIFY:
		a.identify(ev.GetUserId(), ev.GetTraits().GetFields(), at)
		return
	case ingestionv1.EventType_EVENT_TYPE_PAGE, ingestionv1.EventType_EVENT_TYPE_SCREEN:
		a.activity(ev.GetUserId(), at)
		a.count(at, "", true)
		return
	case ingestionv1.EventType_EVENT_TYPE_TRACK:
	default:
		return
	}
	name := ev.GetEvent()
	a.touchName(name, at)
	switch name {
	case "billing.renewed":
		a.Outcomes = append(a.Outcomes, Outcome{Kind: OutcomeRenewed, At: at})
		a.applyTraits(props, at)
	case "billing.churned":
		a.Outcomes = append(a.Outcomes, Outcome{Kind: OutcomeChurned, At: at})
	case "support.ticket_opened":
		if id := str(props["ticket_id"]); id != "" && len(a.Tickets) < MaxTickets {
			if a.Tickets == nil {
				a.Tickets = map[string]Ticket{}
			}
			a.Tickets[id] = Ticket{Priority: strings.ToLower(str(props["priority"])), OpenedAt: at}
		}
	case "support.ticket_closed", "support.ticket_resolved":
		delete(a.Tickets, str(props["ticket_id"]))
	case "survey.nps":
		if s, ok := number(props["score"]); ok && s >= 0 && s <= 10 {
			a.NPS = s
		}
	case "integration.connected":
		if n := str(props["integration"]); n != "" {
			if a.Integrations == nil {
				a.Integrations = map[string]time.Time{}
			}
			a.Integrations[n] = at
		}
	case "integration.disconnected":
		delete(a.Integrations, str(props["integration"]))
	default:
		if strings.HasPrefix(name, "billing.") {
			a.applyTraits(props, at)
			return
		}
		if src := ev.GetSource(); src != "" && src != "product" {
			a.count(at, name, false)
			return
		}
		a.activity(ev.GetUserId(), at)
		a.count(at, name, true)
		feature := name
		if f := str(props["feature"]); f != "" {
			feature = f
		}
		if a.Features == nil {
			a.Features = map[string]time.Time{}
		}
		if last, ok := a.Features[feature]; ok || len(a.Features) < MaxNames {
			if at.After(last) {
				a.Features[feature] = at
			}
		}
		if tier := str(props["tier"]); tier != "" && tier != a.Plan {
			if a.HigherTier == nil {
				a.HigherTier = map[string][]time.Time{}
			}
			uses := append(a.HigherTier[feature], at)
			if len(uses) > 10 {
				uses = uses[len(uses)-10:]
			}
			a.HigherTier[feature] = uses
		}
	}
}

func (a *Aggregate) touchName(name string, at time.Time) {
	if a.LastByName == nil {
		a.LastByName = map[string]time.Time{}
	}
	last, ok := a.LastByName[name]
	if !ok && len(a.LastByName) >= MaxNames {
		return
	}
	if at.After(last) {
		a.LastByName[name] = at
	}
}

func (a *Aggregate) count(at time.Time, name string, product bool) {
	day := at.Unix() / 86400
	i := sort.Search(len(a.Days), func(i int) bool { return a.Days[i].Day >= day })
	if i == len(a.Days) || a.Days[i].Day != day {
		a.Days = append(a.Days, Day{})
		copy(a.Days[i+1:], a.Days[i:])
		a.Days[i] = Day{Day: day}
	}
	d := &a.Days[i]
	if product {
		d.Product++
	}
	if name != "" {
		if d.Named == nil {
			d.Named = map[string]int{}
		}
		if _, ok := d.Named[name]; ok || len(d.Named) < MaxNames {
			d.Named[name]++
		}
	}
	if last := a.Days[len(a.Days)-1].Day; len(a.Days) > 0 {
		cut := sort.Search(len(a.Days), func(i int) bool { return a.Days[i].Day > last-KeepDays })
		a.Days = a.Days[cut:]
	}
}

func (a *Aggregate) activity(user string, at time.Time) {
	if user == "" {
		return
	}
	u := a.user(user, at)
	if u == nil {
		return
	}
	if u.FirstSeen.IsZero() || at.Before(u.FirstSeen) {
		u.FirstSeen = at
	}
	if at.After(u.LastSeen) {
		u.LastSeen = at
	}
}

func (a *Aggregate) user(id string, _ time.Time) *User {
	if a.Users == nil {
		a.Users = map[string]*User{}
	}
	u, ok := a.Users[id]
	if !ok {
		if len(a.Users) >= MaxUsers {
			return nil
		}
		u = &User{}
		a.Users[id] = u
	}
	return u
}

func (a *Aggregate) identify(user string, traits map[string]*structpb.Value, at time.Time) {
	if user == "" {
		return
	}
	u := a.user(user, at)
	if u == nil {
		return
	}
	if strings.EqualFold(str(traits["role"]), "champion") {
		u.Champion = true
	}
	if email := str(traits["email"]); strings.Contains(email, "@") {
		a.Domains = firstSeen(a.Domains, strings.ToLower(email[strings.LastIndex(email, "@")+1:]), at)
	}
	if dep := str(traits["department"]); dep != "" {
		a.Departments = firstSeen(a.Departments, strings.ToLower(dep), at)
	}
}

func firstSeen(m map[string]time.Time, k string, at time.Time) map[string]time.Time {
	if m == nil {
		m = map[string]time.Time{}
	}
	if old, ok := m[k]; ok && !at.Before(old) {
		return m
	}
	if len(m) >= MaxNames {
		return m
	}
	m[k] = at
	return m
}

func (a *Aggregate) applyTraits(traits map[string]*structpb.Value, at time.Time) {
	for k, v := range traits {
		if a.Traits == nil {
			a.Traits = map[string]string{}
		}
		if _, ok := a.Traits[k]; ok || len(a.Traits) < MaxNames {
			a.Traits[k] = str(v)
		}
		switch k {
		case "seats":
			if n, ok := number(v); ok && n >= 0 {
				if a.Seats > 0 && int(n) > a.Seats {
					a.Outcomes = append(a.Outcomes, Outcome{Kind: OutcomeExpanded, At: at})
				}
				a.Seats = int(n)
			}
		case "arr":
			if n, ok := number(v); ok {
				a.ARR = n
			}
		case "plan":
			a.Plan = str(v)
		case "segment":
			a.Segment = str(v)
		case "usage_limit":
			if n, ok := number(v); ok {
				a.UsageLimit = n
			}
		case "contract_end":
			if t, ok := parseTime(str(v)); ok {
				a.ContractEnd = t
			}
		case "created_at":
			if t, ok := parseTime(str(v)); ok && t.Before(a.CreatedAt) {
				a.CreatedAt = t
			}
		case "champion_user_id":
			if id := str(v); id != "" {
				for _, u := range a.Users {
					u.Champion = false
				}
				if u := a.user(id, at); u != nil {
					u.Champion = true
				}
			}
		}
	}
}

// ForgetUser removes a user (right to be forgotten). Counts already folded
// into daily totals carry no identity and are kept.
func (a *Aggregate) ForgetUser(id string) { delete(a.Users, id) }

func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func str(v *structpb.Value) string {
	switch x := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return x.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(x.NumberValue, 'f', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return ""
}

func number(v *structpb.Value) (float64, bool) {
	switch x := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return x.NumberValue, true
	case *structpb.Value_StringValue:
		f, err := strconv.ParseFloat(x.StringValue, 64)
		return f, err == nil
	}
	return 0, false
}
