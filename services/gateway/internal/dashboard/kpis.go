package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// KPI period bounds: the default period is the 90 days ending today, and a
// period may not exceed five years.
const (
	defaultKPIDays = 90
	maxKPIDays     = 5 * 366
	day            = 24 * time.Hour
)

// KPI units.
const (
	UnitRatio    = "ratio"    // 0 to 1 (or above, for NRR); the dashboard shows a percentage
	UnitDays     = "days"     // fractional days
	UnitHours    = "hours"    // fractional hours
	UnitFeatures = "features" // distinct features per account
)

// KPI ids, in the order the report lists them.
const (
	KPIActivationRate = "activation_rate"
	KPITimeToValue    = "time_to_first_value"
	KPIAdoptionDepth  = "adoption_depth"
	KPIGrossRetention = "gross_revenue_retention"
	KPINetRetention   = "net_revenue_retention"
	KPIRenewalRate    = "renewal_rate"
	KPISpeedToContact = "speed_to_contact"
)

// AccountRef is one account counted by a KPI.
type AccountRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Figure is a secondary number of a KPI: a p90, a part of a sum, a bucket of
// a distribution.
type Figure struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // a KPI unit, "accounts", "arr" or "count"
}

// Part is the numerator or the denominator of a KPI: its figure, what it
// counts, and the accounts behind it.
type Part struct {
	Value    float64      `json:"value"`
	Unit     string       `json:"unit"` // "accounts", "arr", "features" or "handoffs"
	Label    string       `json:"label"`
	Accounts []AccountRef `json:"accounts"`
}

// KPI is one council KPI over a period. Value is absent when the
// denominator is empty (nothing to measure), never NaN.
type KPI struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Value       *float64 `json:"value,omitempty"`
	Unit        string   `json:"unit"`
	Numerator   Part     `json:"numerator"`
	Denominator Part     `json:"denominator"`
	Figures     []Figure `json:"figures,omitempty"`
	// Definition is the KPI's definition as docs/kpis.md states it.
	Definition string `json:"definition"`
	// Period says which time the KPI reads, when it is not the report's
	// period (adoption depth reads the last 30 days).
	Period string `json:"period,omitempty"`
}

// KPIReport is the answer of GET /v1/dashboard/kpis.
type KPIReport struct {
	AsOf time.Time `json:"asOf"`
	// From and To bound the period, [From, To): whole UTC days.
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Segment string    `json:"segment,omitempty"`
	// Segments are the segments the workspace's accounts carry, for the
	// dashboard's selector.
	Segments []string `json:"segments"`
	KPIs     []KPI    `json:"kpis"`
}

// KPIInputs are the service answers the KPIs are computed from: every
// account the journey knows (churned included) with its milestones, and
// routing's assignments.
type KPIInputs struct {
	Accounts    []*stagesv1.AccountSummary
	Assignments []*routingv1.Assignment
}

// Definitions of the KPIs, as docs/kpis.md states them.
var definitions = map[string]string{
	KPIActivationRate: "Accounts that became customers in the period (their first change to the customer status) and have reached the " +
		"first-value moment (the first activated or first_value event, the journey's activation moment) by now, divided by the accounts " +
		"that became customers in the period.",
	KPITimeToValue: "Median (and p90, nearest rank) of the days from becoming a customer to the first-value moment, over the accounts " +
		"that became customers in the period and have reached it; a first value before the purchase counts as 0 days.",
	KPIAdoptionDepth: "Mean number of distinct product features (the journey's features list, else every product feature) each paying " +
		"account (customer or won back, now) used in the last 30 days, with the distribution.",
	KPIGrossRetention: "Of the accounts paying at the start of the period, their ARR at the start, minus the ARR of those that churned by " +
		"its end and minus contraction (ARR decreases), divided by their ARR at the start. ARR on a day is the one the latest contract " +
		"event (billing.subscription_started, contract_updated, renewed) up to that day set. New customers of the period are left out.",
	KPINetRetention: "As gross revenue retention, plus expansion (ARR increases): the period-end ARR of the accounts paying at its start " +
		"(0 for those that churned) divided by their ARR at the start.",
	KPIRenewalRate: "Renewals due in the period that renewed, divided by the renewals due. A renewal is due in the period when the account " +
		"renewed in it (a billing.renewed event), churned in it, or is paying with a contract end in the period, up to now, and no renewal " +
		"in it (overdue). Contract ends still ahead are counted apart as upcoming.",
	KPISpeedToContact: "Median (and p90, nearest rank) of the hours from a handoff (a routing assignment created in the period) to its " +
		"owner's first touch, over the handoffs touched so far, as routing's report measures speed to lead.",
}

var kpiNames = map[string]string{
	KPIActivationRate: "Activation rate", KPITimeToValue: "Time to first value", KPIAdoptionDepth: "Adoption depth",
	KPIGrossRetention: "Gross revenue retention", KPINetRetention: "Net revenue retention", KPIRenewalRate: "Renewal rate",
	KPISpeedToContact: "Speed to contact",
}

// Definition is a KPI's definition.
func Definition(id string) string { return definitions[id] }

// milestone is what the KPIs read of one account.
type milestone struct {
	ref        AccountRef
	changes    []*commonv1.StatusChange
	customerAt time.Time // first change to customer; zero when never
	firstValue time.Time
	features   int32
	arr        float64
	history    []*stagesv1.ArrChange
	contract   time.Time
	renewed    []time.Time
}

func readMilestone(a *stagesv1.AccountSummary) milestone {
	m := a.GetMilestones()
	out := milestone{
		ref:      AccountRef{ID: a.GetAccountId(), Name: cmp.Or(a.GetName(), a.GetTraits()["name"], a.GetAccountId())},
		changes:  m.GetLifecycle().GetHistory(),
		features: m.GetFeaturesUsed_30D(),
		arr:      m.GetArr(),
		history:  m.GetArrHistory(),
	}
	if len(out.changes) == 0 && a.GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
		// No history (milestones not filled): the current status since when.
		out.changes = []*commonv1.StatusChange{{Status: a.GetStatus(), At: a.GetStatusSince()}}
	}
	for _, c := range out.changes {
		if c.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER {
			out.customerAt = c.GetAt().AsTime()
			break
		}
	}
	out.firstValue = stamp(m.GetFirstValueAt())
	out.contract = stamp(m.GetContractEnd())
	for _, r := range m.GetRenewedAt() {
		out.renewed = append(out.renewed, r.AsTime())
	}
	return out
}

// stamp is ts as a time; zero when unset or at the epoch.
func stamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || ts.GetSeconds() <= 0 {
		return time.Time{}
	}
	return ts.AsTime()
}

// statusAt is the account's status at t: that of its latest change at or
// before t; unspecified before its first.
func (m milestone) statusAt(t time.Time) commonv1.AccountStatus {
	st := commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED
	for _, c := range m.changes {
		if c.GetAt().AsTime().After(t) {
			break
		}
		st = c.GetStatus()
	}
	return st
}

func paying(s commonv1.AccountStatus) bool {
	return s == commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER || s == commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK
}

// arrAt is the ARR at t: that of the latest change at or before t. An
// account whose history is empty (state from before stages kept one) has
// its current ARR throughout.
func (m milestone) arrAt(t time.Time) float64 {
	if len(m.history) == 0 {
		return m.arr
	}
	arr := 0.0
	for _, c := range m.history {
		if c.GetAt().AsTime().After(t) {
			break
		}
		arr = c.GetArr()
	}
	return arr
}

// within reports whether t is in [from, to).
func within(t, from, to time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }

// BuildKPIs computes the council KPIs over [from, to) as of asOf.
func BuildKPIs(asOf, from, to time.Time, segment string, in KPIInputs) KPIReport {
	return prepareKPIs(in).build(asOf, from, to, segment)
}

// kpiBase is what the KPIs read of a workspace, worked out once per
// snapshot of the services (Snapshots): the milestones of the accounts
// any KPI can count, in name order, and every account's name and segment.
type kpiBase struct {
	// ms are the accounts that have been paying or churned, or renewed:
	// the others (prospects and trials that never bought) count in no
	// KPI, and at 100,000 accounts they are nearly all of them.
	ms       []milestone
	segs     []string // segs[i] is the segment of ms[i]
	segments []string
	bySeg    map[string]string
	names    map[string]AccountRef
	handoffs []*routingv1.Assignment
}

func prepareKPIs(in KPIInputs) *kpiBase {
	b := &kpiBase{segments: []string{}, bySeg: make(map[string]string, len(in.Accounts)), names: make(map[string]AccountRef, len(in.Accounts)),
		handoffs: in.Assignments}
	var ms []milestone
	var segs []string
	for _, a := range in.Accounts {
		id := a.GetAccountId()
		if _, dup := b.bySeg[id]; dup {
			continue
		}
		seg := cmp.Or(a.GetSegment(), a.GetTraits()["segment"])
		b.bySeg[id] = seg
		m := readMilestone(a)
		b.names[id] = m.ref
		if !m.counts() {
			continue
		}
		ms = append(ms, m)
		segs = append(segs, seg)
	}
	for _, seg := range b.bySeg {
		if seg != "" {
			b.segments = append(b.segments, seg)
		}
	}
	slices.Sort(b.segments)
	b.segments = slices.Compact(b.segments)
	// Sort positions rather than the milestones themselves, which are
	// large to swap.
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		return cmp.Or(cmp.Compare(ms[i].ref.Name, ms[j].ref.Name), cmp.Compare(ms[i].ref.ID, ms[j].ref.ID))
	})
	b.ms, b.segs = make([]milestone, len(ms)), make([]string, len(ms))
	for i, j := range order {
		b.ms[i], b.segs[i] = ms[j], segs[j]
	}
	return b
}

// counts reports whether any KPI can count the account: it has been a
// customer, won back or churned, or renewed.
func (m *milestone) counts() bool {
	if len(m.renewed) > 0 {
		return true
	}
	for _, c := range m.changes {
		switch c.GetStatus() {
		case commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED:
			return true
		}
	}
	return false
}

// build computes the KPIs over [from, to) as of asOf for one segment ("":
// every account).
func (b *kpiBase) build(asOf, from, to time.Time, segment string) KPIReport {
	end := to
	if asOf.Before(end) {
		end = asOf
	}
	rep := KPIReport{AsOf: asOf.UTC(), From: from.UTC(), To: to.UTC(), Segment: segment, Segments: b.segments}
	ms := b.ms
	if segment != "" {
		ms = nil
		for i, m := range b.ms {
			if b.segs[i] == segment {
				ms = append(ms, m)
			}
		}
	}
	rep.KPIs = append(rep.KPIs, activation(ms, from, to, asOf)...)
	rep.KPIs = append(rep.KPIs, adoption(ms, asOf))
	rep.KPIs = append(rep.KPIs, retention(ms, from, end)...)
	rep.KPIs = append(rep.KPIs, renewals(ms, from, to, end))
	var handoffs []*routingv1.Assignment
	for _, a := range b.handoffs {
		if segment != "" && b.bySeg[a.GetAccountId()] != segment {
			continue
		}
		handoffs = append(handoffs, a)
	}
	rep.KPIs = append(rep.KPIs, speedToContact(handoffs, b.names, from, to))
	return rep
}

func newKPI(id, unit string) KPI {
	return KPI{ID: id, Name: kpiNames[id], Unit: unit, Definition: definitions[id]}
}

// ratio is n/d, absent when d is 0.
func ratio(n, d float64) *float64 {
	if d == 0 {
		return nil
	}
	v := n / d
	return &v
}

// nearestRank is the nearest-rank p-th percentile of sorted values (as
// routing's report computes speed to lead).
func nearestRank(sorted []float64, p int) float64 {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank-1, 0)]
}

func refs(ms []milestone) []AccountRef {
	out := make([]AccountRef, len(ms))
	for i, m := range ms {
		out[i] = m.ref
	}
	return out
}

// activation gives the activation rate and the time to first value of the
// accounts that became customers in [from, to).
func activation(ms []milestone, from, to, asOf time.Time) []KPI {
	var cohort, reached []milestone
	var days []float64
	for _, m := range ms {
		if !within(m.customerAt, from, to) {
			continue
		}
		cohort = append(cohort, m)
		if m.firstValue.IsZero() || m.firstValue.After(asOf) {
			continue
		}
		reached = append(reached, m)
		days = append(days, max(0, m.firstValue.Sub(m.customerAt).Hours()/24))
	}
	rate := newKPI(KPIActivationRate, UnitRatio)
	rate.Numerator = Part{Value: float64(len(reached)), Unit: "accounts", Label: "reached first value", Accounts: refs(reached)}
	rate.Denominator = Part{Value: float64(len(cohort)), Unit: "accounts", Label: "became customers", Accounts: refs(cohort)}
	rate.Value = ratio(rate.Numerator.Value, rate.Denominator.Value)

	ttv := newKPI(KPITimeToValue, UnitDays)
	ttv.Numerator = rate.Numerator
	ttv.Denominator = rate.Denominator
	if len(days) > 0 {
		slices.Sort(days)
		median := nearestRank(days, 50)
		ttv.Value = &median
		ttv.Figures = []Figure{{Label: "p90", Value: nearestRank(days, 90), Unit: UnitDays}}
	}
	return []KPI{rate, ttv}
}

// adoptionBuckets are the distribution's buckets of features used: 0, 1,
// 2, 3, 4 and 5 or more.
const adoptionBuckets = 6

// adoption gives the adoption depth of the accounts paying at asOf.
func adoption(ms []milestone, asOf time.Time) KPI {
	k := newKPI(KPIAdoptionDepth, UnitFeatures)
	k.Period = "the 30 days to " + asOf.UTC().Format("Jan 2, 2006")
	var payers, using []milestone
	var sum float64
	buckets := make([]float64, adoptionBuckets)
	for _, m := range ms {
		if !paying(m.statusAt(asOf)) {
			continue
		}
		payers = append(payers, m)
		sum += float64(m.features)
		buckets[min(int(max(m.features, 0)), adoptionBuckets-1)]++
		if m.features > 0 {
			using = append(using, m)
		}
	}
	k.Numerator = Part{Value: sum, Unit: "features", Label: "features used, summed over accounts", Accounts: refs(using)}
	k.Denominator = Part{Value: float64(len(payers)), Unit: "accounts", Label: "paying accounts", Accounts: refs(payers)}
	k.Value = ratio(sum, float64(len(payers)))
	for i, n := range buckets {
		label := []string{"0 features", "1 feature", "2 features", "3 features", "4 features", "5 or more features"}[i]
		k.Figures = append(k.Figures, Figure{Label: label, Value: n, Unit: "accounts"})
	}
	return k
}

// retention gives the gross and net revenue retention from from to end of
// the accounts paying at from.
func retention(ms []milestone, from, end time.Time) []KPI {
	var cohort, kept []milestone
	var start, churned, contraction, expansion, endARR float64
	for _, m := range ms {
		if !paying(m.statusAt(from)) {
			continue
		}
		cohort = append(cohort, m)
		s := m.arrAt(from)
		start += s
		if !paying(m.statusAt(end)) {
			churned += s
			continue
		}
		kept = append(kept, m)
		e := m.arrAt(end)
		endARR += e
		if e < s {
			contraction += s - e
		} else {
			expansion += e - s
		}
	}
	denom := Part{Value: start, Unit: "arr", Label: "ARR at the start of the accounts paying then", Accounts: refs(cohort)}
	parts := []Figure{
		{Label: "churned ARR", Value: churned, Unit: "arr"},
		{Label: "contraction", Value: contraction, Unit: "arr"},
		{Label: "expansion", Value: expansion, Unit: "arr"},
	}
	grr := newKPI(KPIGrossRetention, UnitRatio)
	grr.Denominator = denom
	grr.Numerator = Part{Value: start - churned - contraction, Unit: "arr", Label: "ARR kept (churn and contraction taken off)", Accounts: refs(kept)}
	grr.Value = ratio(grr.Numerator.Value, start)
	grr.Figures = parts[:2]
	nrr := newKPI(KPINetRetention, UnitRatio)
	nrr.Denominator = denom
	nrr.Numerator = Part{Value: endARR, Unit: "arr", Label: "their ARR at the end (expansion added)", Accounts: refs(kept)}
	nrr.Value = ratio(endARR, start)
	nrr.Figures = parts
	return []KPI{grr, nrr}
}

// renewals gives the renewal rate of the renewals due in [from, to), up to
// end (the earlier of to and now).
func renewals(ms []milestone, from, to, end time.Time) KPI {
	k := newKPI(KPIRenewalRate, UnitRatio)
	var renewed, due []milestone
	var upcoming, churned, overdue float64
	for _, m := range ms {
		didRenew := slices.ContainsFunc(m.renewed, func(t time.Time) bool { return within(t, from, end) })
		churnedIn := slices.ContainsFunc(m.changes, func(c *commonv1.StatusChange) bool {
			return c.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED && within(c.GetAt().AsTime(), from, end)
		})
		payingNow := paying(m.statusAt(end))
		switch {
		case didRenew:
			renewed = append(renewed, m)
			due = append(due, m)
		case churnedIn:
			churned++
			due = append(due, m)
		case payingNow && within(m.contract, from, end):
			overdue++
			due = append(due, m)
		case payingNow && within(m.contract, end, to):
			upcoming++
		}
	}
	k.Numerator = Part{Value: float64(len(renewed)), Unit: "accounts", Label: "renewed", Accounts: refs(renewed)}
	k.Denominator = Part{Value: float64(len(due)), Unit: "accounts", Label: "renewals due", Accounts: refs(due)}
	k.Value = ratio(k.Numerator.Value, k.Denominator.Value)
	k.Figures = []Figure{
		{Label: "churned", Value: churned, Unit: "accounts"},
		{Label: "overdue (contract ended, not renewed)", Value: overdue, Unit: "accounts"},
		{Label: "upcoming (contract ends later in the period)", Value: upcoming, Unit: "accounts"},
	}
	return k
}

// speedToContact gives the median time from handoff to first touch of the
// assignments created in [from, to).
func speedToContact(as []*routingv1.Assignment, names map[string]AccountRef, from, to time.Time) KPI {
	k := newKPI(KPISpeedToContact, UnitHours)
	var hours []float64
	var all, touched []AccountRef
	seenAll, seenTouched := map[string]bool{}, map[string]bool{}
	add := func(list *[]AccountRef, seen map[string]bool, id string) {
		if id == "" || seen[id] {
			return
		}
		seen[id] = true
		*list = append(*list, cmp.Or(names[id], AccountRef{ID: id, Name: id}))
	}
	n := 0
	for _, a := range as {
		created := stamp(a.GetCreatedAt())
		if !within(created, from, to) {
			continue
		}
		n++
		add(&all, seenAll, a.GetAccountId())
		touch := stamp(a.GetFirstTouchAt())
		if touch.IsZero() {
			continue
		}
		add(&touched, seenTouched, a.GetAccountId())
		hours = append(hours, max(0, touch.Sub(created).Hours()))
	}
	k.Numerator = Part{Value: float64(len(hours)), Unit: "handoffs", Label: "handoffs touched", Accounts: touched}
	k.Denominator = Part{Value: float64(n), Unit: "handoffs", Label: "handoffs created", Accounts: all}
	if len(hours) > 0 {
		slices.Sort(hours)
		median := nearestRank(hours, 50)
		k.Value = &median
		k.Figures = []Figure{{Label: "p90", Value: nearestRank(hours, 90), Unit: UnitHours}}
	}
	return k
}

// ParsePeriod reads the from and to parameters (YYYY-MM-DD, UTC days, to
// inclusive) into [from, to): by default the 90 days ending today.
func ParsePeriod(q map[string][]string, now time.Time) (from, to time.Time, field, problem string) {
	today := now.UTC().Truncate(day)
	to = today.Add(day)
	from = to.AddDate(0, 0, -defaultKPIDays)
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get("to"); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return from, to, "to", "must be a date, YYYY-MM-DD"
		}
		to = t.Add(day)
		from = to.AddDate(0, 0, -defaultKPIDays)
	}
	if v := get("from"); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return from, to, "from", "must be a date, YYYY-MM-DD"
		}
		from = t
	}
	if !from.Before(to) {
		return from, to, "from", "must be on or before to"
	}
	if to.Sub(from) > maxKPIDays*day {
		return from, to, "from", "the period may span at most five years"
	}
	return from, to, "", ""
}

// KPIs serves GET /v1/dashboard/kpis?from=YYYY-MM-DD&to=YYYY-MM-DD&segment=S:
// the council KPIs of the caller's workspace (docs/kpis.md). What they
// are computed from is kept between requests (Snapshots) until the
// services' state moves; the period and segment are applied per request.
func KPIs(c Clients, now func() time.Time) http.Handler {
	cache := &Snapshots{Now: now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "GET /v1/dashboard/kpis")
		q := r.URL.Query()
		asOf := now().UTC()
		from, to, field, problem := ParsePeriod(q, asOf)
		if field != "" {
			web.WriteFieldError(w, r, field, problem)
			return
		}
		segment := q.Get("segment")
		ctx := outgoing(r)
		fp, err := Fingerprint(ctx, c)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		base, _, err := cache.get(cacheKey("kpis", r.Header.Get("Authorization")), fp, func() (any, error) {
			in, err := fetchKPIInputs(ctx, c)
			if err != nil {
				return nil, err
			}
			return prepareKPIs(in), nil
		})
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, base.(*kpiBase).build(asOf, from, to, segment))
	})
}

// The statuses of the accounts that have bought (the KPIs read their
// milestones) and of those that have not.
var (
	boughtStatuses = []commonv1.AccountStatus{commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK,
		commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED}
	notBoughtStatuses = []commonv1.AccountStatus{commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL}
)

// fetchKPIInputs reads every account (with its milestones when it has
// bought) and every assignment, at once. The segment is filtered here
// rather than by stages, so that the report can list every segment for the
// selector.
func fetchKPIInputs(ctx context.Context, c Clients) (KPIInputs, error) {
	var (
		in   KPIInputs
		wg   sync.WaitGroup
		errs = make([]error, 3)
	)
	stages := stagesv1.NewStagesServiceClient(c.Stages)
	routing := routingv1.NewRoutingServiceClient(c.Routing)
	var before []*stagesv1.AccountSummary
	// Milestones (which stages reads from every account's aggregates) only
	// of the accounts that are or were paying: an account's status never
	// goes back to prospect or trial once it bought (account.Lifecycle),
	// and a renewal makes it a customer, so the prospects and trials count
	// in no KPI; their names and segments are enough.
	wg.Go(func() { in.Accounts, errs[0] = journeyAccountsIn(ctx, stages, boughtStatuses, true) })
	wg.Go(func() { before, errs[1] = journeyAccountsIn(ctx, stages, notBoughtStatuses, false) })
	wg.Go(func() { in.Assignments, errs[2] = assignments(ctx, routing) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return KPIInputs{}, err
		}
	}
	in.Accounts = append(in.Accounts, before...)
	return in, nil
}
