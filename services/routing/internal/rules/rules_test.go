package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/hours"
)

// monday10 is Monday 2026-11-16 10:00 UTC, inside default working hours.
var monday10 = time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)

// fakeDir is an in-memory Directory that applies decisions like the store does.
type fakeDir struct {
	owners   map[string]*Owner
	pools    map[string]*routingv1.Pool
	load     map[string]int
	cursors  map[string]uint64
	accounts map[string]map[routingv1.Team]string // account id or domain -> team -> owner
}

func newDir(t *testing.T, owners ...*routingv1.Owner) *fakeDir {
	t.Helper()
	d := &fakeDir{owners: map[string]*Owner{}, pools: map[string]*routingv1.Pool{}, load: map[string]int{}, cursors: map[string]uint64{}, accounts: map[string]map[routingv1.Team]string{}}
	for _, o := range owners {
		var away []hours.Window
		if w := o.GetOutOfOffice(); w != nil {
			away = append(away, hours.Window{Start: w.GetStart().AsTime(), End: w.GetEnd().AsTime()})
		}
		cal, err := hours.New(time.UTC, nil, o.GetHolidays(), away)
		if err != nil {
			t.Fatal(err)
		}
		d.owners[o.GetOwnerId()] = &Owner{Owner: o, Calendar: cal}
	}
	return d
}

func (d *fakeDir) Owner(id string) (*Owner, bool)         { o, ok := d.owners[id]; return o, ok }
func (d *fakeDir) Pool(id string) (*routingv1.Pool, bool) { p, ok := d.pools[id]; return p, ok }
func (d *fakeDir) Load(id string) int                     { return d.load[id] }
func (d *fakeDir) Cursor(id string) uint64                { return d.cursors[id] }
func (d *fakeDir) AccountOwner(account, domain string, team routingv1.Team) (string, bool) {
	if id, ok := d.accounts[account][team]; ok && account != "" {
		return id, true
	}
	id, ok := d.accounts[domain][team]
	return id, ok && domain != ""
}

// apply records a result as the store would: load and cursors.
func (d *fakeDir) apply(r Result) {
	if r.OwnerID != "" {
		d.load[r.OwnerID]++
	}
	for p, c := range r.Cursors {
		d.cursors[p] = c
	}
}

func owner(id string, opts ...func(*routingv1.Owner)) *routingv1.Owner {
	o := &routingv1.Owner{OwnerId: id, Team: routingv1.Team_TEAM_SDR}
	for _, f := range opts {
		f(o)
	}
	return o
}

func withCapacity(c int32) func(*routingv1.Owner) { return func(o *routingv1.Owner) { o.Capacity = c } }
func withWeight(w int32) func(*routingv1.Owner)   { return func(o *routingv1.Owner) { o.Weight = w } }
func withOOO(from, to time.Time) func(*routingv1.Owner) {
	return func(o *routingv1.Owner) {
		o.OutOfOffice = &commonv1.TimeWindow{Start: timestamppb.New(from), End: timestamppb.New(to)}
	}
}

func compile(t *testing.T, cfg *routingv1.Config) *Engine {
	t.Helper()
	e, errs := Compile(cfg)
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return e
}

func poolCfg(pool string) *routingv1.Config {
	return &routingv1.Config{Rules: []*routingv1.Rule{{Name: "all", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: pool}}}
}

func TestRuleMatching(t *testing.T) {
	cfg := &routingv1.Config{
		FallbackPoolId: "fallback",
		Rules: []*routingv1.Rule{
			{Name: "enterprise", Condition: `has(account.segment) && account.segment == "enterprise"`, Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "ent"},
			{Name: "sql-only", Types: []routingv1.HandoffType{routingv1.HandoffType_HANDOFF_TYPE_SQL}, Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "ae"},
			{Name: "emea", Condition: `lead.territory == "emea"`, Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "emea"},
			{Name: "pql-type", Condition: `type == "pql"`, Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "pql"},
		},
	}
	e := compile(t, cfg)
	dir := newDir(t, owner("ent"), owner("ae"), owner("emea"), owner("pql"), owner("fb"))
	dir.pools["fallback"] = &routingv1.Pool{PoolId: "fallback", OwnerIds: []string{"fb"}}
	tests := []struct {
		name       string
		in         Input
		wantOwner  string
		wantRule   string
		notMatched []string
		wantErrs   int
	}{
		{"first rule wins", Input{Type: routingv1.HandoffType_HANDOFF_TYPE_SQL, Account: map[string]any{"segment": "enterprise"}, Lead: map[string]any{"territory": "emea"}}, "ent", "enterprise", nil, 0},
		{"type filter", Input{Type: routingv1.HandoffType_HANDOFF_TYPE_SQL, Lead: map[string]any{"territory": "emea"}}, "ae", "sql-only", []string{"enterprise"}, 0},
		{"lead attribute", Input{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: map[string]any{"territory": "emea"}}, "emea", "emea", []string{"enterprise", "sql-only"}, 0},
		{"missing key is an error and no match", Input{Type: routingv1.HandoffType_HANDOFF_TYPE_PQL}, "pql", "pql-type", []string{"enterprise", "sql-only", "emea"}, 1},
		{"nothing matches uses fallback", Input{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: map[string]any{"territory": "amer"}}, "fb", FallbackRule, []string{"enterprise", "sql-only", "emea", "pql-type"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = monday10
			r := e.Decide(tt.in, dir)
			if r.OwnerID != tt.wantOwner || r.Decision.GetRule() != tt.wantRule {
				t.Fatalf("owner %q rule %q, want %q %q", r.OwnerID, r.Decision.GetRule(), tt.wantOwner, tt.wantRule)
			}
			if got := strings.Join(r.Decision.GetRulesNotMatched(), ","); got != strings.Join(tt.notMatched, ",") {
				t.Fatalf("rules not matched %q, want %q", got, tt.notMatched)
			}
			if len(r.Errors) != tt.wantErrs {
				t.Fatalf("errors %v, want %d", r.Errors, tt.wantErrs)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	e := compile(t, &routingv1.Config{Rules: []*routingv1.Rule{
		{Name: "expensive", Condition: `lead.items.all(x, lead.items.all(y, x + y >= 0))`, Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "a"},
	}})
	items := make([]any, 500)
	for i := range items {
		items[i] = int64(i)
	}
	r := e.Decide(Input{Lead: map[string]any{"items": items}, Now: monday10}, newDir(t, owner("a")))
	if r.OwnerID != "" || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Error(), "cost") {
		t.Fatalf("owner %q errors %v, want no owner and a cost-limit error", r.OwnerID, r.Errors)
	}
}

func TestStrategies(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		name     string
		strategy routingv1.Strategy
		owners   []*routingv1.Owner
		n        int
		check    func(t *testing.T, counts map[string]int, dir *fakeDir, results []Result)
	}{
		{
			name: "round robin is fair", strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN, n: 1000,
			owners: []*routingv1.Owner{owner("a"), owner("b"), owner("c"), owner("d"), owner("e")},
			check: func(t *testing.T, counts map[string]int, _ *fakeDir, results []Result) {
				for _, id := range ids {
					if counts[id] != 200 {
						t.Errorf("%s got %d, want 200", id, counts[id])
					}
				}
				for i := 1; i < len(results); i++ {
					if results[i].OwnerID == results[i-1].OwnerID {
						t.Fatalf("assignment %d repeats owner %s", i, results[i].OwnerID)
					}
				}
			},
		},
		{
			name: "weights honoured", strategy: routingv1.Strategy_STRATEGY_WEIGHTED_ROUND_ROBIN, n: 1500,
			owners: []*routingv1.Owner{owner("a", withWeight(1)), owner("b", withWeight(2)), owner("c", withWeight(3)), owner("d", withWeight(4)), owner("e")},
			check: func(t *testing.T, counts map[string]int, _ *fakeDir, _ []Result) {
				want := map[string]float64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 1}
				for id, w := range want {
					share := float64(counts[id]) / 1500
					if math.Abs(share-w/11) > 0.02 {
						t.Errorf("%s share %.3f, want %.3f ± 0.02", id, share, w/11)
					}
				}
			},
		},
		{
			name: "capacity never exceeded", strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN, n: 40,
			owners: []*routingv1.Owner{owner("a", withCapacity(3)), owner("b", withCapacity(10)), owner("c", withCapacity(1)), owner("d", withCapacity(5)), owner("e", withCapacity(2))},
			check: func(t *testing.T, counts map[string]int, dir *fakeDir, results []Result) {
				total := 0
				for _, id := range ids {
					if c := dir.owners[id].Owner.GetCapacity(); counts[id] > int(c) {
						t.Errorf("%s has %d, capacity %d", id, counts[id], c)
					}
					total += counts[id]
				}
				if total != 21 {
					t.Errorf("assigned %d, want 21 (sum of capacities)", total)
				}
				last := results[len(results)-1]
				if last.OwnerID != "" {
					t.Fatalf("last decision chose %s, want nobody", last.OwnerID)
				}
				for _, c := range last.Decision.GetCandidates() {
					if c.GetSkippedBecause() != SkipAtCapacity {
						t.Errorf("candidate %s skipped because %q, want at_capacity", c.GetOwnerId(), c.GetSkippedBecause())
					}
				}
			},
		},
		{
			name: "least loaded evens out", strategy: routingv1.Strategy_STRATEGY_LEAST_LOADED, n: 50,
			owners: []*routingv1.Owner{owner("a"), owner("b"), owner("c"), owner("d"), owner("e")},
			check: func(t *testing.T, counts map[string]int, _ *fakeDir, _ []Result) {
				for _, id := range ids {
					if counts[id] != 10 {
						t.Errorf("%s got %d, want 10", id, counts[id])
					}
				}
			},
		},
		{
			name: "out of office skipped", strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN, n: 100,
			owners: []*routingv1.Owner{owner("a"), owner("b", withOOO(monday10.Add(-time.Hour), monday10.Add(time.Hour))), owner("c"), owner("d"), owner("e")},
			check: func(t *testing.T, counts map[string]int, _ *fakeDir, results []Result) {
				if counts["b"] != 0 {
					t.Fatalf("out-of-office owner got %d", counts["b"])
				}
				found := false
				for _, c := range results[1].Decision.GetCandidates() {
					if c.GetOwnerId() == "b" {
						found = c.GetSkippedBecause() == SkipOutOfOffice
					}
				}
				if !found {
					t.Fatalf("decision %v does not record b as out_of_office", results[1].Decision)
				}
				for _, id := range []string{"a", "c", "d", "e"} {
					if counts[id] != 25 {
						t.Errorf("%s got %d, want 25", id, counts[id])
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDir(t, tt.owners...)
			dir.pools["p"] = &routingv1.Pool{PoolId: "p", OwnerIds: ids, Strategy: tt.strategy}
			e := compile(t, poolCfg("p"))
			counts := map[string]int{}
			var results []Result
			for range tt.n {
				r := e.Decide(Input{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Now: monday10}, dir)
				dir.apply(r)
				if r.OwnerID != "" {
					counts[r.OwnerID]++
				}
				results = append(results, r)
			}
			tt.check(t, counts, dir, results)
		})
	}
}

func TestActions(t *testing.T) {
	saturday := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		rule      *routingv1.Rule
		in        Input
		load      map[string]int
		wantOwner string
		wantSkips map[string]string
	}{
		{"account owner by id", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER, Team: routingv1.Team_TEAM_CSM, PoolId: "p"},
			Input{AccountID: "acme", Now: monday10}, nil, "csm1", nil},
		{"account owner by email domain", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER, Team: routingv1.Team_TEAM_CSM, PoolId: "p"},
			Input{Email: "jo@Globex.com", Now: monday10}, nil, "csm2", nil},
		{"free mail does not match", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER, Team: routingv1.Team_TEAM_CSM, PoolId: "p"},
			Input{Email: "jo@gmail.com", Now: monday10}, nil, "a", nil},
		{"account owner ignores capacity", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER, Team: routingv1.Team_TEAM_CSM, PoolId: "p"},
			Input{AccountID: "acme", Now: monday10}, map[string]int{"csm1": 99}, "csm1", nil},
		{"account owner out of office falls to pool", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER, Team: routingv1.Team_TEAM_CSM, PoolId: "p"},
			Input{AccountID: "initech", Now: monday10}, nil, "a", map[string]string{"away": SkipOutOfOffice}},
		{"named owner at capacity falls to pool", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "capped", PoolId: "p"},
			Input{Now: monday10}, map[string]int{"capped": 1}, "a", map[string]string{"capped": SkipAtCapacity}},
		{"unknown named owner", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: "ghost", PoolId: "p"},
			Input{Now: monday10}, nil, "a", map[string]string{"ghost": SkipUnknownOwner}},
		{"weekend still assigns when nobody works", &routingv1.Rule{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"},
			Input{Now: saturday}, nil, "a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDir(t, owner("a"), owner("b"), owner("csm1"), owner("csm2"), owner("capped", withCapacity(1)),
				owner("away", withOOO(monday10.Add(-time.Hour), monday10.Add(time.Hour))))
			dir.pools["p"] = &routingv1.Pool{PoolId: "p", OwnerIds: []string{"a", "b"}}
			dir.accounts["acme"] = map[routingv1.Team]string{routingv1.Team_TEAM_CSM: "csm1"}
			dir.accounts["globex.com"] = map[routingv1.Team]string{routingv1.Team_TEAM_CSM: "csm2"}
			dir.accounts["initech"] = map[routingv1.Team]string{routingv1.Team_TEAM_CSM: "away"}
			for k, v := range tt.load {
				dir.load[k] = v
			}
			e := compile(t, &routingv1.Config{Rules: []*routingv1.Rule{tt.rule}})
			r := e.Decide(tt.in, dir)
			if r.OwnerID != tt.wantOwner {
				t.Fatalf("owner %q, want %q (decision %v)", r.OwnerID, tt.wantOwner, r.Decision)
			}
			for id, why := range tt.wantSkips {
				ok := false
				for _, c := range r.Decision.GetCandidates() {
					ok = ok || (c.GetOwnerId() == id && c.GetSkippedBecause() == why)
				}
				if !ok {
					t.Errorf("candidate %s not recorded as %s in %v", id, why, r.Decision)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  *routingv1.Config
		path string
	}{
		{"syntax", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Condition: "lead.x ==", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}}}, "rules[0].condition"},
		{"not bool", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Condition: `"x"`, Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}}}, "rules[0].condition"},
		{"unknown variable", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Condition: `user.x == 1`, Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}}}, "rules[0].condition"},
		{"missing name", &routingv1.Config{Rules: []*routingv1.Rule{{Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}}}, "rules[0].name"},
		{"duplicate name", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}, {Name: "r", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"}}}, "rules[1].name"},
		{"pool without id", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_POOL}}}, "rules[0].pool_id"},
		{"no action", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r"}}}, "rules[0].action"},
		{"account owner without team", &routingv1.Config{Rules: []*routingv1.Rule{{Name: "r", Action: routingv1.ActionKind_ACTION_KIND_ACCOUNT_OWNER}}}, "rules[0].team"},
		{"pql syntax", &routingv1.Config{PqlRules: []*routingv1.PqlRule{{Name: "p", Condition: "stage =="}}}, "pql_rules[0].condition"},
		{"sla without within", &routingv1.Config{SlaPolicies: []*routingv1.SlaPolicy{{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL}}}, "sla_policies[0].within"},
		{"sla without type", &routingv1.Config{SlaPolicies: []*routingv1.SlaPolicy{{Within: durationpb.New(time.Hour)}}}, "sla_policies[0].type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, errs := Compile(tt.cfg)
			if e != nil {
				t.Fatal("engine returned for invalid config")
			}
			var paths []string
			for _, err := range errs {
				paths = append(paths, err.GetPath())
			}
			if !strings.Contains(strings.Join(paths, " "), tt.path) {
				t.Fatalf("errors %v do not name %s", errs, tt.path)
			}
		})
	}
}

func TestEvaluatePQL(t *testing.T) {
	e := compile(t, &routingv1.Config{PqlRules: []*routingv1.PqlRule{
		{Name: "activated-trial", Condition: `stage == "trial" && "activation_reached" in signals && has(account.active_users) && account.active_users >= 3`},
		{Name: "healthy", Condition: `health_band == "green" && health_score >= 80.0`},
	}})
	steps := []struct {
		name      string
		p         Product
		wantFired string
		wantNow   string
	}{
		{"nothing yet", Product{Stage: "trial", Account: map[string]any{"active_users": 1}}, "", ""},
		{"activation fires", Product{Stage: "trial", Signals: []string{"activation_reached"}, Account: map[string]any{"active_users": 3}}, "activated-trial", "activated-trial"},
		{"still holding does not refire", Product{Stage: "trial", Signals: []string{"activation_reached"}, Account: map[string]any{"active_users": 4}, HealthBand: "green", HealthScore: 85}, "healthy", "activated-trial,healthy"},
		{"stops holding", Product{Stage: "onboarding", HealthBand: "yellow"}, "", ""},
		{"requalifies", Product{Stage: "trial", Signals: []string{"activation_reached"}, Account: map[string]any{"active_users": 5}}, "activated-trial", "activated-trial"},
	}
	var holding []string
	for _, s := range steps {
		fired, now, errs := e.EvaluatePQL(s.p, holding)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", s.name, errs)
		}
		if strings.Join(fired, ",") != s.wantFired || strings.Join(now, ",") != s.wantNow {
			t.Fatalf("%s: fired %v now %v, want %q %q", s.name, fired, now, s.wantFired, s.wantNow)
		}
		holding = now
	}
}

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{"a@Acme.COM": "acme.com", "x@gmail.com": "", "nope": "", "a@": ""} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			if got := Domain(in); got != want {
				t.Fatalf("Domain(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestTerritoryAndSegment(t *testing.T) {
	withTerritories := func(ts ...string) func(*routingv1.Owner) { return func(o *routingv1.Owner) { o.Territories = ts } }
	withSegments := func(ss ...string) func(*routingv1.Owner) { return func(o *routingv1.Owner) { o.Segments = ss } }
	tests := []struct {
		name      string
		in        Input
		wantOwner string
		wantSkips string
	}{
		{"emea lead skips na", Input{Territory: "emea"}, "lena", "sam:territory_mismatch lena:"},
		{"apac lead", Input{Territory: "apac"}, "kenji", "sam:territory_mismatch lena:territory_mismatch kenji:"},
		{"no territory matches everyone", Input{}, "sam", "sam:"},
		{"unknown territory falls to the owner without territories", Input{Territory: "latam"}, "any", "sam:territory_mismatch lena:territory_mismatch kenji:territory_mismatch any:"},
		{"segment filters too", Input{Territory: "emea", Segment: "enterprise"}, "any", "sam:territory_mismatch lena:segment_mismatch kenji:territory_mismatch any:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDir(t, owner("sam", withTerritories("na")), owner("lena", withTerritories("emea"), withSegments("smb")), owner("kenji", withTerritories("apac")), owner("any"))
			dir.pools["p"] = &routingv1.Pool{PoolId: "p", OwnerIds: []string{"sam", "lena", "kenji", "any"}}
			tt.in.Now = monday10
			r := compile(t, poolCfg("p")).Decide(tt.in, dir)
			var skips []string
			for _, c := range r.Decision.GetCandidates() {
				skips = append(skips, c.GetOwnerId()+":"+c.GetSkippedBecause())
			}
			if r.OwnerID != tt.wantOwner || strings.Join(skips, " ") != tt.wantSkips {
				t.Fatalf("owner %q candidates %q, want %q %q", r.OwnerID, strings.Join(skips, " "), tt.wantOwner, tt.wantSkips)
			}
		})
	}
}

// TestPQLCanHold checks that rules requiring a lifecycle status in a
// top-level conjunct are known not to hold for other statuses, and that
// evaluating them then indeed finds none holding and no error, even where
// the rest of the condition would hold or fail.
func TestPQLCanHold(t *testing.T) {
	// A churn event with no purchase before it makes a churned account;
	// trial_started a trial.
	aggs := map[account.Status]*account.Aggregates{account.StatusProspect: account.New("ws", "acme")}
	for status, event := range map[account.Status]string{account.StatusTrial: "trial_started", account.StatusChurned: "billing.churned", account.StatusCustomer: "crm.closed_won"} {
		a := account.New("ws", "acme")
		a.Apply(&ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: event, Timestamp: timestamppb.New(monday10)}, &account.Config{})
		if a.Status() != status {
			t.Fatalf("%s gives status %s, want %s", event, a.Status(), status)
		}
		aggs[status] = a
	}
	tests := []struct {
		name  string
		rules []string
		// can are the statuses some rule can hold for; nil: all.
		can []account.Status
	}{
		{"demo rules", []string{`status == "trial" && active_users("14d") >= 0`, `status == "trial" && integrations() >= 0`}, []account.Status{account.StatusTrial}},
		{"reversed operands, nested and", []string{`true && ("customer" == status && !has_event("x"))`, `(health_score >= 0.0 && status == "churned") && true`}, []account.Status{account.StatusCustomer, account.StatusChurned}},
		{"erroring rest", []string{`account.missing == 1 && status == "trial"`}, []account.Status{account.StatusTrial}},
		{"two statuses never hold", []string{`status == "trial" && status == "customer"`}, []account.Status{}},
		{"one unguarded rule", []string{`status == "trial"`, `health_score >= 0.0`}, nil},
		{"or is no guard", []string{`status == "trial" || true`}, nil},
		{"not equal is no guard", []string{`status != "trial" && true`}, nil},
		{"comprehension is no guard", []string{`["trial"].exists(status, status == "trial")`}, nil},
		{"guard under a negation is none", []string{`!(status == "trial" && false)`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &routingv1.Config{}
			for i, r := range tt.rules {
				cfg.PqlRules = append(cfg.PqlRules, &routingv1.PqlRule{Name: fmt.Sprint("r", i), Condition: r})
			}
			e := compile(t, cfg)
			for status, agg := range aggs {
				want := tt.can == nil || slices.Contains(tt.can, status)
				if got := e.PQLCanHold(status); got != want {
					t.Fatalf("PQLCanHold(%s) = %v, want %v", status, got, want)
				}
				if want {
					continue
				}
				_, now, errs := e.EvaluatePQL(Product{Aggregates: agg, Now: monday10, Account: map[string]any{}}, nil)
				if len(now) > 0 || len(errs) > 0 {
					t.Fatalf("status %s: rules %v hold, errors %v; PQLCanHold said none can", status, now, errs)
				}
			}
		})
	}
}
