// Package signals derives risk, expansion and renewal-window signals from an
// account's facts and keeps them deduplicated: a signal opens once when its
// condition starts to hold, stays open (its attributes may be refreshed) and
// closes once when the condition clears. It is pure and keeps no clock.
package signals

import (
	"sort"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// Reasons, stable because routing rules and lists match on them.
const (
	UsageDrop          = "usage_drop_30d"
	SingleActiveUser   = "single_active_user"
	LowFeatureAdoption = "low_feature_adoption"
	P1TicketAging      = "p1_ticket_aging"
	ChampionInactive   = "champion_inactive"
	NPSDetractor       = "nps_detractor"
	BandDrop           = "band_drop"
	SeatUtilization    = "seat_utilization_high"
	UsageNearLimit     = "usage_near_limit"
	NewEmailDomain     = "new_email_domain"
	NewDepartment      = "new_department"
	HigherTierFeature  = "higher_tier_feature"
)

// Renewal plays, carried in the "play" attribute of renewal signals.
const (
	PlayAutomated  = "automated_renewal"
	PlayStrategic  = "strategic_business_review"
	PlayStandard   = "standard_renewal"
	PlayMonitor    = "monitor"
	renewalPrefix  = "renewal_window_"
	grace          = 30 * 24 * time.Hour
	newWithin      = 30 * 24 * time.Hour
	usageBaseline  = 10
	limitShare     = 0.8
	seatShare      = 0.8
	tierUsesNeeded = 3
)

// Horizon is how many days back from the evaluation day Evaluate reads an
// account's daily buckets: usage_drop_30d compares the last 30 days with
// the 30 before. Keep it in step with the rules below.
const Horizon = 60

// Windows returns the renewal windows, in days before contract end, largest first.
func Windows() []int { return []int{120, 90, 60, 30} }

// RenewalReason names the signal of a renewal window.
func RenewalReason(days int) string { return renewalPrefix + strconv.Itoa(days) }

// Condition is one signal whose condition currently holds.
type Condition struct {
	// Kind groups the signal.
	Kind commonv1.SignalKind
	// Reason is the stable machine-readable reason.
	Reason string
	// Message explains the condition to a person.
	Message string
	// Attributes carry details (play, band, domains...).
	Attributes map[string]string
}

// Facts are what the rules read: an account at one evaluation time.
type Facts struct {
	// Agg is the account's aggregates.
	Agg *account.Aggregates
	// Now is the evaluation time.
	Now time.Time
	// Band is the band just computed; PrevBand the band before it (unspecified on first score).
	Band, PrevBand healthv1.Band
	// Features are the event names that count as features for
	// low_feature_adoption (the model's, measure.Features); nil counts
	// every product feature recorded.
	Features []string
}

// State is an account's signal state, persisted between evaluations.
type State struct {
	// Open holds the open signals by reason.
	Open map[string]*commonv1.Signal
	// DropFrom is the band the account held before a band drop; the band_drop
	// signal stays open until the account is back in it.
	DropFrom healthv1.Band
}

// worse reports whether band a is worse than b (at risk is worst).
func worse(a, b healthv1.Band) bool {
	if a == healthv1.Band_BAND_UNSPECIFIED || b == healthv1.Band_BAND_UNSPECIFIED {
		return false
	}
	return a > b
}

// Evaluate lists the conditions that hold. It updates st.DropFrom, the only
// state a rule needs beyond the facts.
func Evaluate(f Facts, st *State) []Condition {
	a, now := f.Agg, f.Now
	created := unix(a.Created())
	age := now.Sub(created)
	var out []Condition
	add := func(kind commonv1.SignalKind, reason, msg string, attrs map[string]string) {
		out = append(out, Condition{Kind: kind, Reason: reason, Message: msg, Attributes: attrs})
	}
	risk, exp := commonv1.SignalKind_SIGNAL_KIND_RISK, commonv1.SignalKind_SIGNAL_KIND_EXPANSION

	// "" counts product events (account.Day.Product), as count("", w) does.
	prev := a.Count("", 30, now.AddDate(0, 0, -30))
	if tr := a.Trend("", 30, now); prev >= usageBaseline && tr < -0.30 {
		add(risk, UsageDrop, "product usage down "+f0(-tr*100)+"% over the last 30 days", nil)
	}
	active := a.ActiveUsers(30, now)
	if age >= grace && active <= 1 {
		add(risk, SingleActiveUser, strconv.Itoa(active)+" active user(s) in the last 30 days after 30 days as a customer", nil)
	}
	if feats := a.FeaturesUsed(f.Features, 30, now); age >= grace && feats < 3 {
		add(risk, LowFeatureAdoption, strconv.Itoa(feats)+" feature(s) used in the last 30 days; fewer than 3", nil)
	}
	if d := oldestTicketDays(a, "p1", now); d > 7 {
		add(risk, P1TicketAging, "a P1 ticket has been open for "+f0(d)+" days", nil)
	}
	if a.HasChampion() {
		last := a.ChampionLastSeen()
		if (last != 0 && now.Sub(unix(last)) > grace) || (last == 0 && age > grace) {
			add(risk, ChampionInactive, "the champion has not been active for more than 30 days", nil)
		}
	}
	if a.NPS >= 0 && a.NPS <= 6 {
		add(risk, NPSDetractor, "latest NPS answer is "+strconv.Itoa(int(a.NPS))+" (detractor)", nil)
	}
	switch {
	case worse(f.Band, f.PrevBand) && st.DropFrom == healthv1.Band_BAND_UNSPECIFIED:
		st.DropFrom = f.PrevBand
	case st.DropFrom != healthv1.Band_BAND_UNSPECIFIED && !worse(f.Band, st.DropFrom):
		st.DropFrom = healthv1.Band_BAND_UNSPECIFIED
	}
	if st.DropFrom != healthv1.Band_BAND_UNSPECIFIED {
		add(risk, BandDrop, "score dropped from "+bandName(st.DropFrom)+" to "+bandName(f.Band),
			map[string]string{"from_band": bandName(st.DropFrom), "band": bandName(f.Band)})
	}

	if a.Seats > 0 {
		if r := float64(len(a.Users)) / float64(a.Seats); r > seatShare {
			add(exp, SeatUtilization, strconv.Itoa(len(a.Users))+" users on "+strconv.FormatInt(a.Seats, 10)+" seats ("+f0(r*100)+"%)", nil)
		}
	}
	if a.UsageLimit > 0 {
		if used := a.Count("", 30, now); float64(used) >= limitShare*a.UsageLimit {
			u := strconv.FormatInt(used, 10)
			add(exp, UsageNearLimit, u+" of "+f0(a.UsageLimit)+" monthly events used",
				map[string]string{"used": u, "limit": strconv.FormatFloat(a.UsageLimit, 'f', -1, 64)})
		}
	}
	if ds := fresh(a.Domains, created, now); len(ds) > 0 {
		add(exp, NewEmailDomain, "new email domain(s) among users: "+strings.Join(ds, ", "), map[string]string{"domains": strings.Join(ds, ",")})
	}
	if ds := fresh(a.Departments, created, now); len(ds) > 0 {
		add(exp, NewDepartment, "new department(s) among users: "+strings.Join(ds, ", "), map[string]string{"departments": strings.Join(ds, ",")})
	}
	var tiers []string
	for feat, uses := range a.HigherTier {
		n := 0
		for _, u := range uses {
			if t := unix(u); !t.After(now) && now.Sub(t) < 30*24*time.Hour {
				n++
			}
		}
		if n >= tierUsesNeeded {
			tiers = append(tiers, feat)
		}
	}
	if len(tiers) > 0 {
		sort.Strings(tiers)
		add(exp, HigherTierFeature, "repeated use of higher-tier feature(s): "+strings.Join(tiers, ", "), map[string]string{"features": strings.Join(tiers, ",")})
	}
	daysLeft := -1.0
	if a.ContractEnd != 0 {
		daysLeft = unix(a.ContractEnd).Sub(now).Hours() / 24
	}
	if c, ok := Renewal(daysLeft, f.Band); ok {
		out = append(out, c)
	}
	return out
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// NextChange is the earliest time after f.Now at which a time rule of
// Evaluate can change its answer with no new event: a renewal window
// opening or closing, an account reaching 30 days as a customer, a P1
// ticket turning 7 days old, the champion's 30 days of silence, a new
// domain or department or a higher-tier use leaving its 30-day window, and
// the next UTC midnight, when every daily window (usage, active users,
// features) moves on. Keep it in step with the rules of Evaluate.
func NextChange(f Facts) time.Time {
	a, now := f.Agg, f.Now
	next := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	at := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	created := unix(a.Created())
	at(created.Add(grace)) // age >= grace
	for _, t := range a.Tickets {
		if t.Priority == "p1" {
			at(unix(t.OpenedAt).Add(7*24*time.Hour + time.Second)) // older than 7 days
		}
	}
	if a.HasChampion() {
		if last := a.ChampionLastSeen(); last != 0 {
			at(unix(last).Add(grace + time.Second))
		} else {
			at(created.Add(grace + time.Second))
		}
	}
	for _, m := range []map[string]int64{a.Domains, a.Departments} {
		for _, sec := range m {
			at(unix(sec).Add(newWithin))
		}
	}
	for _, uses := range a.HigherTier {
		for _, u := range uses {
			at(unix(u).Add(30 * 24 * time.Hour))
		}
	}
	if a.ContractEnd != 0 {
		end := unix(a.ContractEnd)
		for _, d := range Windows() {
			at(end.Add(-time.Duration(d) * 24 * time.Hour))
		}
		at(end.Add(time.Second)) // past the end: the last window closes
	}
	return next
}

// oldestTicketDays is the age in days of the oldest open ticket of a
// priority, 0 when none is open.
func oldestTicketDays(a *account.Aggregates, priority string, now time.Time) float64 {
	oldest := 0.0
	for _, t := range a.Tickets {
		if t.Priority == priority {
			oldest = max(oldest, now.Sub(unix(t.OpenedAt)).Hours()/24)
		}
	}
	return oldest
}

// fresh lists keys first seen within the last 30 days, leaving out those
// seen in the account's first 30 days (the founding domains).
func fresh(m map[string]int64, created, now time.Time) []string {
	var out []string
	for k, sec := range m {
		t := unix(sec)
		if t.Sub(created) > grace && !t.After(now) && now.Sub(t) < newWithin {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Renewal returns the renewal-window condition for an account daysLeft days
// before contract end (negative = unknown or past), with the play for band:
// at risk runs a strategic business review from 120 days; healthy accounts
// get a simplified, automated renewal from 90 days; the rest follow the
// standard 90/60/30 playbook. At 120 days non-risk accounts are monitored.
func Renewal(daysLeft float64, band healthv1.Band) (Condition, bool) {
	windows := Windows()
	if daysLeft < 0 || daysLeft > float64(windows[0]) {
		return Condition{}, false
	}
	w := windows[len(windows)-1]
	for i, d := range windows {
		next := 0
		if i+1 < len(windows) {
			next = windows[i+1]
		}
		if daysLeft <= float64(d) && daysLeft > float64(next) {
			w = d
			break
		}
	}
	play := PlayStandard
	switch {
	case band == healthv1.Band_BAND_AT_RISK:
		play = PlayStrategic
	case w == 120:
		play = PlayMonitor
	case band == healthv1.Band_BAND_HEALTHY:
		play = PlayAutomated
	}
	return Condition{
		Kind:    commonv1.SignalKind_SIGNAL_KIND_RENEWAL,
		Reason:  RenewalReason(w),
		Message: "contract ends in " + f0(daysLeft) + " days; play: " + play,
		Attributes: map[string]string{
			"play": play, "band": bandName(band), "window_days": strconv.Itoa(w),
		},
	}, true
}

// f0 formats like fmt's %.0f (messages are built for every account of a
// rescore, so without fmt).
func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

func bandName(b healthv1.Band) string {
	return strings.ToLower(strings.TrimPrefix(b.String(), "BAND_"))
}

// ID is the stable signal id: account + kind + reason.
func ID(account string, kind commonv1.SignalKind, reason string) string {
	return account + "/" + strings.ToLower(strings.TrimPrefix(kind.String(), "SIGNAL_KIND_")) + "/" + reason
}

// Diff reconciles the open signals in st with the conditions that hold now
// and returns every signal that opened, closed or changed attributes (each
// a fresh copy, ready to publish and store). st.Open is updated.
func Diff(workspace, account string, st *State, conds []Condition, now time.Time) []*commonv1.Signal {
	if st.Open == nil {
		st.Open = map[string]*commonv1.Signal{}
	}
	var out []*commonv1.Signal
	holds := make(map[string]bool, len(conds))
	for _, c := range conds {
		holds[c.Reason] = true
		if s, ok := st.Open[c.Reason]; ok {
			if !sameAttrs(s.GetAttributes(), c.Attributes) {
				s.Attributes = copyAttrs(c.Attributes)
				s.Message = c.Message
				out = append(out, cloneSignal(s))
			}
			continue
		}
		s := &commonv1.Signal{
			Workspace: workspace, AccountId: account, SignalId: ID(account, c.Kind, c.Reason),
			Kind: c.Kind, Reason: c.Reason, Message: c.Message, State: commonv1.SignalState_SIGNAL_STATE_OPEN,
			OpenedAt: timestamppb.New(now), Attributes: copyAttrs(c.Attributes),
		}
		st.Open[c.Reason] = s
		out = append(out, cloneSignal(s))
	}
	reasons := make([]string, 0, len(st.Open))
	for r := range st.Open {
		if !holds[r] {
			reasons = append(reasons, r)
		}
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		s := st.Open[r]
		delete(st.Open, r)
		s.State = commonv1.SignalState_SIGNAL_STATE_CLOSED
		s.ClosedAt = timestamppb.New(now)
		out = append(out, s)
	}
	return out
}

// cloneSignal is proto.Clone for a Signal without reflection (Diff runs for
// every account of a rescore); TestCloneSignalCopiesEveryField keeps it
// complete.
func cloneSignal(s *commonv1.Signal) *commonv1.Signal {
	c := &commonv1.Signal{
		Workspace: s.GetWorkspace(), AccountId: s.GetAccountId(), SignalId: s.GetSignalId(), Kind: s.GetKind(),
		Reason: s.GetReason(), Message: s.GetMessage(), State: s.GetState(),
		OpenedAt: cloneTime(s.GetOpenedAt()), ClosedAt: cloneTime(s.GetClosedAt()), Attributes: copyAttrs(s.GetAttributes()),
	}
	// Fields unknown to this build (written by a newer one) survive, as with proto.Clone.
	if u := s.ProtoReflect().GetUnknown(); len(u) > 0 {
		c.ProtoReflect().SetUnknown(append(protoreflect.RawFields(nil), u...))
	}
	return c
}

func cloneTime(t *timestamppb.Timestamp) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return &timestamppb.Timestamp{Seconds: t.GetSeconds(), Nanos: t.GetNanos()}
}

func sameAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func copyAttrs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
