package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/journey"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

const ws = "acme"

var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cairn-plays-app-test-secret-01234"))

// receiver is a loopback HTTPS receiver: /hook verifies every delivery's
// Standard Webhooks signature with the reference library, /slack takes
// Slack messages. Each answers what its script says.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu sync.Mutex
	// got are the accepted deliveries.
	got []delivery
	// answer decides the status of the n-th request to path (0-based);
	// nil answers 200.
	answer func(path string, n int) int
	n      map[string]int
}

type delivery struct {
	path string
	id   string
	body map[string]any
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, n: map[string]int{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := r.n[req.URL.Path]
		r.n[req.URL.Path]++
		status := 200
		if r.answer != nil {
			status = r.answer(req.URL.Path, n)
		}
		r.mu.Unlock()
		if req.URL.Path == "/hook" {
			if err := r.wh.Verify(body, req.Header); err != nil {
				t.Errorf("signature does not verify: %v", err)
				w.WriteHeader(400)
				return
			}
		}
		if status >= 300 {
			w.WriteHeader(status)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body is not JSON: %v: %s", err, body)
		}
		r.mu.Lock()
		r.got = append(r.got, delivery{path: req.URL.Path, id: req.Header.Get("webhook-id"), body: m})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	// Handshakes cut short when a test ends are not news.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// wait polls until the receiver has n deliveries. The bound guards a hang;
// it is not a speed assertion.
func (r *receiver) wait(n int) []delivery {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("%d deliveries", n), func() bool { return len(r.deliveries()) >= n })
	return r.deliveries()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// env is a plays Service over a real bbolt file with its delivery engine
// running, on a Manual clock.
type env struct {
	t      *testing.T
	path   string
	db     *pstore.DB
	clk    *clock.Manual
	svc    *Service
	engine *deliver.Engine
	stop   func()
	offset uint64
}

func newEnv(t *testing.T, rcv *receiver) *env {
	t.Helper()
	return openEnv(t, filepath.Join(t.TempDir(), "plays.db"), clock.NewManual(time.Now().UTC().Truncate(time.Second)), rcv)
}

// openEnv opens the Service over path; its engine trusts rcv's
// certificate (nil: no receiver).
func openEnv(t *testing.T, path string, clk *clock.Manual, rcv *receiver) *env {
	t.Helper()
	db, err := store.OpenDB(path, pstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, path: path, db: db, clk: clk}
	pol := deliver.Policy{AllowPrivate: true}
	engine, err := deliver.New(deliver.Options{
		Clock: clk, Policy: pol, Rand: func() float64 { return 0.5 }, Transport: transport(rcv),
		Record: func(ctx context.Context, outs []deliver.Outcome) error { return e.svc.Record(ctx, outs) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.engine = engine
	e.svc = New(Options{DB: db, Clock: clk, Engine: engine, Policy: pol, DashboardURL: "http://dash.example"})
	if _, err := e.svc.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("engine: %v", err)
			}
			_ = db.Close()
		})
	}
	t.Cleanup(e.stop)
	return e
}

func transport(rcv *receiver) http.RoundTripper {
	if rcv == nil {
		return nil
	}
	tr := rcv.srv.Client().Transport.(*http.Transport).Clone()
	// Redirects are the engine's business: it follows none.
	return tr
}

// nextOffset numbers the records a test applies, as their logs would:
// a record's source key (log, partition, offset) is what a play fired for.
func (e *env) nextOffset() uint64 {
	e.offset++
	return e.offset
}

// apply applies a plays file and fails the test on error.
func (e *env) apply(yaml string) *playsv1.PlaysVersion {
	e.t.Helper()
	v, _, err := e.svc.ApplyPlays(context.Background(), ws, yaml, false)
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return v
}

// stages, health and routing apply records as their consumers do: in
// one transaction of the plays file.
func (e *env) stages(recs ...*stagesv1.LogRecord) {
	e.t.Helper()
	for _, r := range recs {
		r.Offset = e.nextOffset()
	}
	if err := e.db.Commit(context.Background(), func(tx *pstore.Tx) error { return e.svc.ApplyStages(tx, 0, recs) }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) health(recs ...*healthv1.LogRecord) {
	e.t.Helper()
	for _, r := range recs {
		r.Offset = e.nextOffset()
	}
	if err := e.db.Commit(context.Background(), func(tx *pstore.Tx) error { return e.svc.ApplyHealth(tx, 0, recs) }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) routing(recs ...*routingv1.LogRecord) {
	e.t.Helper()
	for _, r := range recs {
		r.Offset = e.nextOffset()
	}
	if err := e.db.Commit(context.Background(), func(tx *pstore.Tx) error { return e.svc.ApplyRouting(tx, 0, 0, recs) }); err != nil {
		e.t.Fatal(err)
	}
}

// tasks lists the account's tasks, soonest due first.
func (e *env) tasks(account string) []*playsv1.Task {
	e.t.Helper()
	ts, _, _, err := e.svc.ListTasks(ws, &playsv1.ListTasksRequest{AccountId: account}, nil, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

func (e *env) firings(account string) []*playsv1.Firing {
	e.t.Helper()
	fs, _, _, err := e.svc.ListFirings(ws, &playsv1.ListFiringsRequest{AccountId: account}, nil, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return fs
}

func (e *env) deliveriesOf(state playsv1.DeliveryState) []*playsv1.Delivery {
	e.t.Helper()
	ds, _, _, err := e.svc.ListDeliveries(ws, &playsv1.ListDeliveriesRequest{State: state}, nil, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// Record builders.

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// transition is a stage change of the workspace's default journey, the
// one plays that name no journey follow.
func transition(account, from, to, cause string, at time.Time) *stagesv1.LogRecord {
	return transitionIn(journey.Default, account, from, to, cause, at)
}

// transitionIn is a stage change of journey j.
func transitionIn(j, account, from, to, cause string, at time.Time) *stagesv1.LogRecord {
	return &stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{
		Workspace: ws, AccountId: account, JourneyId: j, Version: 1, FromStage: from, ToStage: to, Cause: cause, At: ts(at),
	}}}
}

func renewal(account string, window int, band string, at time.Time) *healthv1.LogRecord {
	return &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
		Workspace: ws, AccountId: account, SignalId: fmt.Sprintf("%s/renewal/renewal_window_%d", account, window),
		Kind: commonv1.SignalKind_SIGNAL_KIND_RENEWAL, Reason: fmt.Sprintf("renewal_window_%d", window),
		Message: fmt.Sprintf("contract ends in %d days", window), State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: ts(at),
		Attributes: map[string]string{"window_days": fmt.Sprint(window), "band": band},
	}}}
}

func risk(account, reason string, at time.Time) *healthv1.LogRecord {
	return &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: &commonv1.Signal{
		Workspace: ws, AccountId: account, SignalId: account + "/risk/" + reason, Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
		Reason: reason, Message: "usage fell 40% over 30 days", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: ts(at),
	}}}
}

// closed is r's signal closed at at.
func closed(r *healthv1.LogRecord, at time.Time) *healthv1.LogRecord {
	sg := proto.Clone(r.GetSignal()).(*commonv1.Signal)
	sg.State, sg.ClosedAt = commonv1.SignalState_SIGNAL_STATE_CLOSED, ts(at)
	return &healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: sg}}
}

func score(account string, prev, band healthv1.Band, s float64, at time.Time) *healthv1.LogRecord {
	return &healthv1.LogRecord{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: &healthv1.ScoreChange{
		Workspace: ws, AccountId: account, PreviousBand: prev, Band: band, PreviousScore: 70, Score: s, At: ts(at),
	}}}
}

func assignment(id, account string, typ routingv1.HandoffType, owner string, at time.Time) *routingv1.LogRecord {
	return &routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: &routingv1.Assignment{
		Workspace: ws, AssignmentId: id, AccountId: account, Type: typ, OwnerId: owner,
		State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, CreatedAt: ts(at),
		Decision: &routingv1.Decision{Rule: "pql-by-territory"}, Lead: &routingv1.Lead{Name: "Acme Corp", Segment: "enterprise"},
	}}}
}

func slaEvent(id, kind, owner string, at time.Time) *routingv1.LogRecord {
	return &routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: &routingv1.SlaEvent{
		Workspace: ws, AssignmentId: id, Kind: kind, OwnerId: owner, At: ts(at),
	}}}
}

// titles are the tasks' titles with their state and owner.
func titles(tasks []*playsv1.Task) []string {
	out := make([]string, len(tasks))
	for i, k := range tasks {
		out[i] = fmt.Sprintf("%s [%s %s]", k.GetTitle(), strings.ToLower(strings.TrimPrefix(k.GetState().String(), "TASK_STATE_")), k.GetOwnerRole())
	}
	return out
}

// playsFile is the scenario suite's plays file (testdata/scenario.yaml)
// with its destinations pointed at the receiver.
func playsFile(t *testing.T, rcv *receiver) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "RECEIVER", rcv.srv.URL)
	return strings.ReplaceAll(s, "WEBHOOK_SECRET", testSecret)
}

func tombstone(account string) *commonv1.Tombstone {
	return &commonv1.Tombstone{Workspace: ws, AccountId: account, DeletedAt: ts(time.Now())}
}
