package dashboard

import (
	"math"
	"net/url"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// The hand-computed workspace: the period is January to March 2026
// ([Jan 1, Apr 1)), and "now" is Mar 20, so the period's end for
// retention and renewals is Mar 20.
var (
	kFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kTo   = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	kNow  = time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
)

// d is midnight UTC of a day of 2026 (d(1) is Jan 1, d(0) Dec 31, 2025).
func d(n int) time.Time { return time.Date(2026, 1, n, 0, 0, 0, 0, time.UTC) }

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

const (
	prospect = commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT
	customer = commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER
	churnedS = commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED
	wonBack  = commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK
)

// acct builds one account: its status changes (status, day), first value
// day (0: none), features used in 30 days, ARR changes (day, arr), contract
// end day (0: unknown) and renewal days.
type acct struct {
	id, segment string
	changes     [][2]int
	statuses    []commonv1.AccountStatus
	firstValue  int
	features    int32
	arr         [][2]float64
	contractEnd int
	renewed     []int
}

func (a acct) summary() *stagesv1.AccountSummary {
	m := &stagesv1.AccountMilestones{Lifecycle: &commonv1.Lifecycle{}, FeaturesUsed_30D: a.features}
	for i, c := range a.changes {
		m.Lifecycle.History = append(m.Lifecycle.History, &commonv1.StatusChange{Status: a.statuses[i], At: ts(d(c[0]))})
	}
	if a.firstValue != 0 {
		m.FirstValueAt = ts(d(a.firstValue))
	}
	for _, c := range a.arr {
		m.ArrHistory = append(m.ArrHistory, &stagesv1.ArrChange{At: ts(d(int(c[0]))), Arr: c[1]})
		m.Arr = c[1]
	}
	if a.contractEnd != 0 {
		m.ContractEnd = ts(d(a.contractEnd))
	}
	for _, r := range a.renewed {
		m.RenewedAt = append(m.RenewedAt, ts(d(r)))
	}
	last := m.Lifecycle.History[len(m.Lifecycle.History)-1]
	return &stagesv1.AccountSummary{AccountId: a.id, Name: "Account " + a.id, Segment: a.segment,
		Status: last.GetStatus(), StatusSince: last.GetAt(), Milestones: m}
}

// kpiWorkspace is eight accounts (day numbers are days of 2026: 32 is
// Feb 1, 60 is Mar 1, 79 is Mar 20 = now):
//
//	a  smb  customer since Dec 1 2025 (day -30); ARR 1000, then 1500 on day 40 (expansion); renewed day 50; 4 features
//	b  smb  customer since day -60; ARR 2000; churned day 45; contract end day 45
//	c  ent  customer since day -90; ARR 3000, then 2400 on day 20 (contraction); contract end day 70 (overdue at now); 2 features
//	d  ent  prospect day -10, customer day 10; first value day 15; ARR 500 from day 10; 1 feature
//	e  smb  prospect day 5, customer day 20; first value day 50; ARR 800 from day 20; 7 features
//	f  smb  prospect day 8, customer day 30; no first value; ARR 600 from day 30; 0 features
//	g  ent  prospect day 2; never a customer
//	h  ent  customer day -100; contract end day 85 (upcoming, after now); ARR 1200; 3 features
func kpiWorkspace() []*stagesv1.AccountSummary {
	as := []acct{
		{id: "a", segment: "smb", changes: [][2]int{{-40, 0}, {-30, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			features: 4, arr: [][2]float64{{-30, 1000}, {40, 1500}}, contractEnd: 415, renewed: []int{50}},
		{id: "b", segment: "smb", changes: [][2]int{{-70, 0}, {-60, 0}, {45, 0}}, statuses: []commonv1.AccountStatus{prospect, customer, churnedS},
			arr: [][2]float64{{-60, 2000}}, contractEnd: 45},
		{id: "c", segment: "ent", changes: [][2]int{{-95, 0}, {-90, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			features: 2, arr: [][2]float64{{-90, 3000}, {20, 2400}}, contractEnd: 70},
		{id: "d", segment: "ent", changes: [][2]int{{-10, 0}, {10, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			firstValue: 15, features: 1, arr: [][2]float64{{10, 500}}, contractEnd: 375},
		{id: "e", segment: "smb", changes: [][2]int{{5, 0}, {20, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			firstValue: 50, features: 7, arr: [][2]float64{{20, 800}}, contractEnd: 385},
		{id: "f", segment: "smb", changes: [][2]int{{8, 0}, {30, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			arr: [][2]float64{{30, 600}}, contractEnd: 395},
		{id: "g", segment: "ent", changes: [][2]int{{2, 0}}, statuses: []commonv1.AccountStatus{prospect}},
		{id: "h", segment: "ent", changes: [][2]int{{-105, 0}, {-100, 0}}, statuses: []commonv1.AccountStatus{prospect, customer},
			features: 3, arr: [][2]float64{{-100, 1200}}, contractEnd: 85},
	}
	out := make([]*stagesv1.AccountSummary, len(as))
	for i, a := range as {
		out[i] = a.summary()
	}
	return out
}

// kpiAssignments are four handoffs: three created in the period (one of
// them untouched) and one before it.
func kpiAssignments() []*routingv1.Assignment {
	at := func(day, hour int) *timestamppb.Timestamp { return ts(d(day).Add(time.Duration(hour) * time.Hour)) }
	return []*routingv1.Assignment{
		{AssignmentId: "h1", AccountId: "d", CreatedAt: at(10, 9), FirstTouchAt: at(10, 11)}, // 2 h
		{AssignmentId: "h2", AccountId: "e", CreatedAt: at(20, 9), FirstTouchAt: at(21, 9)},  // 24 h
		{AssignmentId: "h3", AccountId: "f", CreatedAt: at(30, 9)},                           // untouched
		{AssignmentId: "h4", AccountId: "a", CreatedAt: at(-5, 9), FirstTouchAt: at(-5, 10)}, // before the period
	}
}

type wantKPI struct {
	value       float64 // NaN: absent
	num, den    float64
	numAccounts []string
	denAccounts []string
	figures     map[string]float64
}

func TestKPIs(t *testing.T) {
	tests := []struct {
		id      string
		segment string
		want    wantKPI
	}{
		// Became customers in the period: d (day 10), e (day 20), f (day 30)
		// = 3; of them d and e reached first value: 2/3.
		{id: KPIActivationRate, want: wantKPI{value: 2.0 / 3, num: 2, den: 3, numAccounts: []string{"d", "e"}, denAccounts: []string{"d", "e", "f"}}},
		// In the smb segment only e and f became customers; e reached it: 1/2.
		{id: KPIActivationRate, segment: "smb", want: wantKPI{value: 0.5, num: 1, den: 2, numAccounts: []string{"e"}, denAccounts: []string{"e", "f"}}},
		// Days to first value: d 15-10 = 5, e 50-20 = 30. Nearest rank:
		// median = 1st of 2 = 5, p90 = 2nd of 2 = 30.
		{id: KPITimeToValue, want: wantKPI{value: 5, num: 2, den: 3, numAccounts: []string{"d", "e"}, denAccounts: []string{"d", "e", "f"},
			figures: map[string]float64{"p90": 30}}},
		// Paying now: a 4, c 2, d 1, e 7, f 0, h 3 (b churned, g a prospect):
		// 17 features / 6 accounts = 2.8333; buckets 0:1 (f), 1:1 (d), 2:1
		// (c), 3:1 (h), 4:1 (a), 5+:1 (e).
		{id: KPIAdoptionDepth, want: wantKPI{value: 17.0 / 6, num: 17, den: 6, numAccounts: []string{"a", "c", "d", "e", "h"},
			denAccounts: []string{"a", "c", "d", "e", "f", "h"},
			figures:     map[string]float64{"0 features": 1, "1 feature": 1, "2 features": 1, "3 features": 1, "4 features": 1, "5 or more features": 1}}},
		// Paying on Jan 1: a 1000, b 2000, c 3000, h 1200 = 7200 at the
		// start. b churned (2000); c contracted to 2400 (600); a expanded to
		// 1500 (500). GRR = (7200 - 2000 - 600) / 7200 = 4600/7200.
		{id: KPIGrossRetention, want: wantKPI{value: 4600.0 / 7200, num: 4600, den: 7200, numAccounts: []string{"a", "c", "h"},
			denAccounts: []string{"a", "b", "c", "h"}, figures: map[string]float64{"churned ARR": 2000, "contraction": 600}}},
		// NRR = end ARR of the same accounts, a 1500 + c 2400 + h 1200 =
		// 5100 (= 7200 - 2000 - 600 + 500), / 7200.
		{id: KPINetRetention, want: wantKPI{value: 5100.0 / 7200, num: 5100, den: 7200, numAccounts: []string{"a", "c", "h"},
			denAccounts: []string{"a", "b", "c", "h"}, figures: map[string]float64{"churned ARR": 2000, "contraction": 600, "expansion": 500}}},
		// Enterprise only: c 3000 and h 1200 at the start; c contracts to
		// 2400: GRR = (4200 - 600) / 4200.
		{id: KPIGrossRetention, segment: "ent", want: wantKPI{value: 3600.0 / 4200, num: 3600, den: 4200, numAccounts: []string{"c", "h"},
			denAccounts: []string{"c", "h"}, figures: map[string]float64{"churned ARR": 0, "contraction": 600}}},
		// Due up to now (Mar 20): a renewed (day 50), b churned (day 45), c's
		// contract ended on day 70 without renewal (overdue): 1/3. h's
		// contract ends on day 85, after now: upcoming, not due yet.
		{id: KPIRenewalRate, want: wantKPI{value: 1.0 / 3, num: 1, den: 3, numAccounts: []string{"a"}, denAccounts: []string{"a", "b", "c"},
			figures: map[string]float64{"churned": 1, "overdue (contract ended, not renewed)": 1, "upcoming (contract ends later in the period)": 1}}},
		// Handoffs created in the period: h1 (2 h), h2 (24 h), h3
		// (untouched); h4 is before it. Median of [2, 24] by nearest rank
		// = 2 h, p90 = 24 h; 2 of 3 touched.
		{id: KPISpeedToContact, want: wantKPI{value: 2, num: 2, den: 3, numAccounts: []string{"d", "e"}, denAccounts: []string{"d", "e", "f"},
			figures: map[string]float64{"p90": 24}}},
		// Enterprise: only h1 (d): 2 h.
		{id: KPISpeedToContact, segment: "ent", want: wantKPI{value: 2, num: 1, den: 1, numAccounts: []string{"d"}, denAccounts: []string{"d"},
			figures: map[string]float64{"p90": 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.id+"/"+tt.segment, func(t *testing.T) {
			rep := BuildKPIs(kNow, kFrom, kTo, tt.segment, KPIInputs{Accounts: kpiWorkspace(), Assignments: kpiAssignments()})
			i := slices.IndexFunc(rep.KPIs, func(k KPI) bool { return k.ID == tt.id })
			if i < 0 {
				t.Fatalf("no KPI %s", tt.id)
			}
			k := rep.KPIs[i]
			if k.Definition == "" || k.Name == "" || k.Unit == "" {
				t.Errorf("name %q, unit %q, definition %q: want all set", k.Name, k.Unit, k.Definition)
			}
			if k.Value == nil || math.Abs(*k.Value-tt.want.value) > 1e-9 {
				t.Errorf("value = %v, want %v", deref(k.Value), tt.want.value)
			}
			if k.Numerator.Value != tt.want.num || k.Denominator.Value != tt.want.den {
				t.Errorf("numerator/denominator = %v/%v, want %v/%v", k.Numerator.Value, k.Denominator.Value, tt.want.num, tt.want.den)
			}
			if got := ids(k.Numerator.Accounts); !slices.Equal(got, tt.want.numAccounts) {
				t.Errorf("numerator accounts = %v, want %v", got, tt.want.numAccounts)
			}
			if got := ids(k.Denominator.Accounts); !slices.Equal(got, tt.want.denAccounts) {
				t.Errorf("denominator accounts = %v, want %v", got, tt.want.denAccounts)
			}
			for label, want := range tt.want.figures {
				j := slices.IndexFunc(k.Figures, func(f Figure) bool { return f.Label == label })
				if j < 0 || k.Figures[j].Value != want {
					t.Errorf("figure %q = %v, want %v", label, k.Figures, want)
				}
			}
		})
	}
}

// TestKPIsEmpty: a workspace with nothing to measure has no value (never
// NaN) for any KPI, and every segment is offered.
func TestKPIsEmpty(t *testing.T) {
	rep := BuildKPIs(kNow, kFrom, kTo, "nowhere", KPIInputs{Accounts: kpiWorkspace()})
	if len(rep.KPIs) != 7 {
		t.Fatalf("KPIs = %d, want 7", len(rep.KPIs))
	}
	for _, k := range rep.KPIs {
		if k.Value != nil {
			t.Errorf("%s = %v, want no value", k.ID, *k.Value)
		}
	}
	if !slices.Equal(rep.Segments, []string{"ent", "smb"}) {
		t.Errorf("segments = %v", rep.Segments)
	}
}

func TestParsePeriod(t *testing.T) {
	now := time.Date(2026, 3, 20, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		query    string
		from, to time.Time
		field    string
	}{
		{"", time.Date(2025, 12, 21, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 21, 0, 0, 0, 0, time.UTC), ""},
		{"from=2026-01-01&to=2026-03-31", kFrom, kTo, ""},
		{"to=2026-01-31", time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), ""},
		{"from=yesterday", time.Time{}, time.Time{}, "from"},
		{"to=2026-13-01", time.Time{}, time.Time{}, "to"},
		{"from=2026-03-02&to=2026-03-01", time.Time{}, time.Time{}, "from"},
		{"from=2000-01-01&to=2026-03-01", time.Time{}, time.Time{}, "from"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		from, to, field, _ := ParsePeriod(q, now)
		if field != tt.field || (field == "" && (!from.Equal(tt.from) || !to.Equal(tt.to))) {
			t.Errorf("%q: [%v, %v) field %q, want [%v, %v) field %q", tt.query, from, to, field, tt.from, tt.to, tt.field)
		}
	}
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

func ids(rs []AccountRef) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}
