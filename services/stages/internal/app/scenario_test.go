package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"
)

// scenario is one file of testdata/scenarios: event sequences per account
// with the expected stage, open signals and, at the end, the transitions and
// signals published on the stages log.
type scenario struct {
	Name string `yaml:"name"`
	// Journey is a template id applied as the workspace's journey; empty
	// means the default journey installed on the first event.
	Journey string    `yaml:"journey"`
	Start   time.Time `yaml:"start"`
	Steps   []struct {
		// At is the offset from Start ("14d", "36h"); the clock is set there,
		// due timers fire, then the events are applied.
		At string `yaml:"at"`
		// Every and Until repeat the step's events (without expectations)
		// every interval after At up to Until inclusive.
		Every  string                 `yaml:"every"`
		Until  string                 `yaml:"until"`
		Events []scenarioEvent        `yaml:"events"`
		Expect map[string]expectation `yaml:"expect"`
	} `yaml:"steps"`
	// Log maps an account to its published records, in order:
	// "from>to" for transitions, "+reason"/"-reason" for signals.
	Log map[string][]string `yaml:"log"`
}

type expectation struct {
	Stage string `yaml:"stage"`
	// Open lists the open signal reasons; empty means none.
	Open []string `yaml:"open"`
	// ExitMet lists the current stage's exit criteria that hold.
	ExitMet []string `yaml:"exit_met"`
	// Dropping, when set, is whether the funnel counts the current stay as
	// dropping off (a drop-off signal of the stay is open).
	Dropping *bool `yaml:"dropping"`
}

// flatStep is a scenario step at an absolute offset, after repeats expand.
type flatStep struct {
	at     time.Duration
	label  string
	events []scenarioEvent
	expect map[string]expectation
}

func (sc *scenario) flatten(t *testing.T) []flatStep {
	t.Helper()
	parse := func(s string) time.Duration {
		if s == "0" || s == "0d" {
			return 0
		}
		d, err := journey.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		return d
	}
	var out []flatStep
	for _, st := range sc.Steps {
		at := parse(st.At)
		out = append(out, flatStep{at: at, label: st.At, events: st.Events, expect: st.Expect})
		if st.Every == "" {
			continue
		}
		every, until := parse(st.Every), parse(st.Until)
		for d := at + every; d <= until; d += every {
			out = append(out, flatStep{at: d, label: fmt.Sprintf("%s+%s", st.At, d-at), events: st.Events})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

type scenarioEvent struct {
	// Times repeats the event (default once).
	Times   int            `yaml:"times"`
	Account string         `yaml:"account"`
	User    string         `yaml:"user"`
	Type    string         `yaml:"type"` // track (default), identify, group, page
	Event   string         `yaml:"event"`
	Name    string         `yaml:"name"`
	Offset  string         `yaml:"offset"`
	Props   map[string]any `yaml:"props"`
	Traits  map[string]any `yaml:"traits"`
}

func (se scenarioEvent) proto(t testing.TB, ws string, at time.Time, id string) *ingestionv1.Event {
	t.Helper()
	if se.Offset != "" {
		d, err := journey.ParseDuration(se.Offset)
		if err != nil {
			t.Fatalf("offset: %v", err)
		}
		at = at.Add(d)
	}
	e := &ingestionv1.Event{
		Workspace: ws, MessageId: id, UserId: se.User, AccountId: se.Account, Event: se.Event, Name: se.Name,
		Timestamp: timestamppb.New(at), ReceivedAt: timestamppb.New(at), Source: "product",
	}
	if i := strings.IndexByte(se.Event, '.'); i > 0 {
		e.Source = se.Event[:i]
	}
	switch se.Type {
	case "", "track":
		e.Type = ingestionv1.EventType_EVENT_TYPE_TRACK
	case "identify":
		e.Type = ingestionv1.EventType_EVENT_TYPE_IDENTIFY
	case "group":
		e.Type, e.GroupId = ingestionv1.EventType_EVENT_TYPE_GROUP, se.Account
	case "page":
		e.Type = ingestionv1.EventType_EVENT_TYPE_PAGE
	default:
		t.Fatalf("unknown event type %q", se.Type)
	}
	var err error
	if se.Props != nil {
		if e.Properties, err = structpb.NewStruct(se.Props); err != nil {
			t.Fatalf("props: %v", err)
		}
	}
	if se.Traits != nil {
		if e.Traits, err = structpb.NewStruct(se.Traits); err != nil {
			t.Fatalf("traits: %v", err)
		}
	}
	return e
}

func loadScenario(t *testing.T, path string) *scenario {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &sc
}

// rig is an App over a real bbolt file with a manual clock.
type rig struct {
	t     testing.TB
	db    *pstore.DB
	log   *stream.Log
	app   *App
	clock *clock.Manual
}

const partitions = 4

func newRig(t testing.TB, db *pstore.DB, clk *clock.Manual) *rig {
	t.Helper()
	log, err := stream.OpenLog(db, "stages", stream.LogOptions{Partitions: partitions, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{DB: db, Log: log, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, db: db, log: log, app: a, clock: clk}
}

func (r *rig) apply(evs ...*ingestionv1.Event) {
	r.t.Helper()
	recs := make([]*ingestionv1.LogRecord, len(evs))
	for i, e := range evs {
		recs[i] = &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
	}
	if err := r.db.Update(func(tx *pstore.Tx) error { return r.app.Apply(tx, 0, recs) }); err != nil {
		r.t.Fatalf("apply: %v", err)
	}
}

func (r *rig) account(ws, jid, acct string) *store.Account {
	r.t.Helper()
	var a *store.Account
	err := r.db.View(func(tx *pstore.Tx) error {
		var err error
		a, err = store.Live.GetAccount(tx, ws, jid, acct)
		return err
	})
	if err != nil {
		r.t.Fatalf("account %s: %v", acct, err)
	}
	return a
}

// published returns each account's log records as "from>to", "+reason", "-reason", "x" (tombstone).
func (r *rig) published() map[string][]string {
	r.t.Helper()
	out := map[string][]string{}
	for p := uint32(0); p < partitions; p++ {
		recs, err := r.log.Read(p, 1, 100000)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, rec := range recs {
			var lr stagesv1.LogRecord
			if err := proto.Unmarshal(rec.Data, &lr); err != nil {
				r.t.Fatal(err)
			}
			switch k := lr.GetKind().(type) {
			case *stagesv1.LogRecord_Transition:
				out[k.Transition.GetAccountId()] = append(out[k.Transition.GetAccountId()], k.Transition.GetFromStage()+">"+k.Transition.GetToStage())
			case *stagesv1.LogRecord_Signal:
				sign := "+"
				if k.Signal.GetState() == commonv1.SignalState_SIGNAL_STATE_CLOSED {
					sign = "-"
				}
				out[k.Signal.GetAccountId()] = append(out[k.Signal.GetAccountId()], sign+k.Signal.GetReason())
			case *stagesv1.LogRecord_Tombstone:
				out[k.Tombstone.GetAccountId()] = append(out[k.Tombstone.GetAccountId()], "x")
			}
		}
	}
	return out
}

func (r *rig) installTemplate(ws, id string) string {
	r.t.Helper()
	def, err := journey.Template(id)
	if err != nil {
		r.t.Fatal(err)
	}
	def.Version = 1
	err = r.db.Update(func(tx *pstore.Tx) error {
		if err := store.PutDefinition(tx, ws, def); err != nil {
			return err
		}
		return store.SetActive(tx, ws, def.GetId(), 1)
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return def.GetId()
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../../testdata/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		sc := loadScenario(t, f)
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			runScenario(t, sc)
		})
	}
}

func runScenario(t *testing.T, sc *scenario) {
	const ws = "w"
	clk := clock.NewManual(sc.Start)
	r := newRig(t, storetest.Open(t), clk)
	jid := journey.DefaultJourney
	if sc.Journey != "" {
		jid = r.installTemplate(ws, sc.Journey)
	}
	ctx := context.Background()
	for i, step := range sc.flatten(t) {
		now := sc.Start.Add(step.at)
		clk.Set(now)
		if _, err := r.app.FireDue(ctx, now); err != nil {
			t.Fatalf("step %s: fire timers: %v", step.label, err)
		}
		var evs []*ingestionv1.Event
		for k, se := range step.events {
			for n := 0; n < max(se.Times, 1); n++ {
				evs = append(evs, se.proto(t, ws, now, fmt.Sprintf("s%d-e%d-%d", i, k, n)))
			}
		}
		if len(evs) > 0 {
			r.apply(evs...)
		}
		accts := make([]string, 0, len(step.expect))
		for a := range step.expect {
			accts = append(accts, a)
		}
		sort.Strings(accts)
		for _, acct := range accts {
			want := step.expect[acct]
			a := r.account(ws, jid, acct)
			if got := a.Journey.GetStage(); got != want.Stage {
				t.Errorf("at %s: %s stage = %q, want %q", step.label, acct, got, want.Stage)
			}
			var open []string
			for _, s := range a.Journey.GetOpenSignals() {
				open = append(open, s.GetReason())
			}
			sort.Strings(open)
			sort.Strings(want.Open)
			if strings.Join(open, ",") != strings.Join(want.Open, ",") {
				t.Errorf("at %s: %s open signals = %v, want %v", step.label, acct, open, want.Open)
			}
			if want.Dropping != nil {
				err := r.db.View(func(tx *pstore.Tx) error {
					v, err := store.Live.GetVisit(tx, ws, jid, acct, a.Journey.GetStage(), a.Journey.GetEnteredAt().AsTime())
					if err != nil {
						return err
					}
					if v.DropoffOpen != *want.Dropping {
						t.Errorf("at %s: %s stay in %s dropping = %v, want %v", step.label, acct, v.Stage, v.DropoffOpen, *want.Dropping)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if want.ExitMet != nil {
				var met []string
				err := r.db.View(func(tx *pstore.Tx) error {
					j, err := r.app.journey(tx, ws, jid, a.Journey.GetVersion())
					if err != nil {
						return err
					}
					exit, _ := j.NewEvaluator().Explain(a.Aggs, journey.State{Stage: a.Journey.GetStage(), EnteredAt: a.Journey.GetEnteredAt().AsTime()}, now)
					for _, c := range exit {
						if c.GetMet() {
							met = append(met, c.GetName())
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(met, ",") != strings.Join(want.ExitMet, ",") {
					t.Errorf("at %s: %s exit criteria met = %v, want %v", step.label, acct, met, want.ExitMet)
				}
			}
		}
	}
	got := r.published()
	for acct, want := range sc.Log {
		if strings.Join(got[acct], " ") != strings.Join(want, " ") {
			t.Errorf("%s published:\n got  %s\n want %s", acct, strings.Join(got[acct], " "), strings.Join(want, " "))
		}
	}
	for acct := range got {
		if _, ok := sc.Log[acct]; !ok && sc.Log != nil {
			t.Errorf("%s published %v, not expected", acct, got[acct])
		}
	}
}
