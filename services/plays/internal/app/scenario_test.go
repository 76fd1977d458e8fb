package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/play"
)

// TestRenewalPlaybookByBand: a renewal window opening starts the renewal
// playbook's tasks for that window, by the account's health band.
func TestRenewalPlaybookByBand(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	pb, ok := play.Builtin(play.PlaybookRenewal)
	if !ok {
		t.Fatal("no built-in renewal playbook")
	}
	now := e.clk.Now()
	bands := map[string]healthv1.Band{"at_risk": healthv1.Band_BAND_AT_RISK, "neutral": healthv1.Band_BAND_NEUTRAL, "healthy": healthv1.Band_BAND_HEALTHY}
	for _, band := range []string{"at_risk", "neutral", "healthy"} {
		for _, window := range []int{120, 90, 60, 30} {
			t.Run(fmt.Sprintf("%s/%d", band, window), func(t *testing.T) {
				acct := fmt.Sprintf("%s-%d", band, window)
				e.health(score(acct, healthv1.Band_BAND_UNSPECIFIED, bands[band], 50, now))
				e.health(renewal(acct, window, band, now))
				var want []string
				for _, st := range pb.StepsFor(play.Anchor{WindowDays: window, Band: band}) {
					want = append(want, fmt.Sprintf("%s [open %s]", st.Title, st.Owner))
				}
				got := titles(e.tasks(acct))
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("tasks\n got %q\nwant %q", got, want)
				}
				if band == "healthy" && window != 60 && len(got) != 0 {
					t.Errorf("a healthy account at %d days gets tasks %q; the automated path has only the 60-day check", window, got)
				}
				if band != "healthy" && len(got) == 0 {
					t.Errorf("no renewal task for a %s account at %d days", band, window)
				}
			})
		}
	}
}

// TestOnboardingFirstLoginMiss: entering onboarding schedules the 7-day
// and 45-day checks; at day 7 the check opens for an account still in
// onboarding and is skipped for one that moved on.
func TestOnboardingFirstLoginMiss(t *testing.T) {
	e := newEnv(t, nil)
	e.apply(playsFile(t, newReceiver(t)))
	t0 := e.clk.Now()
	e.stages(transition("slow", "decision", "onboarding", "event", t0), transition("fast", "decision", "onboarding", "event", t0))
	for _, acct := range []string{"slow", "fast"} {
		if got := titles(e.tasks(acct)); len(got) != 2 || !strings.Contains(got[0], "[scheduled csm]") {
			t.Fatalf("%s after entering onboarding: %q, want two scheduled checks", acct, got)
		}
	}
	e.stages(transition("fast", "onboarding", "adoption", "event", t0.Add(3*24*time.Hour)))
	e.clk.Advance(7*24*time.Hour + time.Minute)
	if _, err := e.svc.FireTimers(context.Background(), e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	slow, fast := e.tasks("slow"), e.tasks("fast")
	if slow[0].GetState() != playsv1.TaskState_TASK_STATE_OPEN || !strings.Contains(slow[0].GetTitle(), "7 days") {
		t.Errorf("slow at day 7: %q, want the first-login check open", titles(slow))
	}
	if slow[1].GetState() != playsv1.TaskState_TASK_STATE_SCHEDULED {
		t.Errorf("slow's 45-day check is %s, want still scheduled", slow[1].GetState())
	}
	if fast[0].GetState() != playsv1.TaskState_TASK_STATE_SKIPPED || fast[0].GetClosedBy() != "plays" || !strings.Contains(fast[0].GetNote(), "skip_if") {
		t.Errorf("fast at day 7: %v, want the check skipped by its skip_if", fast[0])
	}
}

// TestPQLSlackAndTask: a PQL assigned to an SDR gives the SDR a task due
// within the SLA, a readable Slack message and a signed webhook.
func TestPQLSlackAndTask(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	at := e.clk.Now()
	e.routing(assignment("as-1", "acme-corp", routingv1.HandoffType_HANDOFF_TYPE_PQL, "sam", at))
	tasks := e.tasks("acme-corp")
	if len(tasks) != 1 || tasks[0].GetOwnerId() != "sam" || tasks[0].GetOwnerRole() != "sdr" ||
		!tasks[0].GetDueAt().AsTime().Equal(at.Add(4*time.Hour)) {
		t.Fatalf("tasks = %v, want one for sam due in 4h", tasks)
	}
	got := rcv.wait(2)
	var slack, hook *delivery
	for i := range got {
		switch got[i].path {
		case "/slack":
			slack = &got[i]
		case "/hook":
			hook = &got[i]
		}
	}
	if slack == nil || hook == nil {
		t.Fatalf("deliveries %v, want one Slack message and one webhook", got)
	}
	text, _ := slack.body["text"].(string)
	for _, want := range []string{"PQL follow-up by the SDR", "Acme Corp (acme-corp)", "PQL handoff assigned to sam (rule pql-by-territory)", "sam (SDR)", "http://dash.example/#/accounts/acme-corp"} {
		if !strings.Contains(text, want) {
			t.Errorf("Slack text lacks %q:\n%s", want, text)
		}
	}
	data, _ := hook.body["data"].(map[string]any)
	if hook.body["type"] != "play.fired" || data["link"] != "http://dash.example/#/accounts/acme-corp" || !strings.HasPrefix(hook.id, "msg_") {
		t.Errorf("webhook %v (id %s)", hook.body, hook.id)
	}
	waitFor(t, "both delivered", func() bool { return len(e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_DELIVERED)) == 2 })
}

// TestChurnedFiresNothingFurther: churn closes the account's open work and
// nothing but the churn play fires for it afterwards.
func TestChurnedFiresNothingFurther(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	at := e.clk.Now()
	e.routing(assignment("cw-1", "gone", routingv1.HandoffType_HANDOFF_TYPE_CLOSED_WON, "nora", at))
	e.health(risk("gone", "usage_drop_30d", at))
	if n := len(e.tasks("gone")); n != 1 {
		t.Fatalf("%d tasks before churn, want the usage-drop task", n)
	}
	rcv.wait(1)
	e.stages(transition("gone", "adoption", "", "churn", at.Add(time.Hour)))
	firings := len(e.firings("gone"))
	e.health(renewal("gone", 90, "at_risk", at.Add(2*time.Hour)), risk("gone", "usage_drop_30d", at.Add(30*24*time.Hour)))
	e.routing(assignment("pql-9", "gone", routingv1.HandoffType_HANDOFF_TYPE_PQL, "sam", at.Add(3*time.Hour)))
	if got := len(e.firings("gone")); got != firings {
		t.Errorf("%d firings after churn, want %d: a churned account fires nothing further", got, firings)
	}
	var post, skipped bool
	for _, k := range e.tasks("gone") {
		switch {
		case k.GetTitle() == "Churn post-mortem" && k.GetOwnerId() == "head-of-cs":
			post = true
		case k.GetState() == playsv1.TaskState_TASK_STATE_SKIPPED && strings.Contains(k.GetClosedBy(), "churned"):
			skipped = true
		}
	}
	if !post || !skipped {
		t.Errorf("tasks %q: want the post-mortem and the usage-drop task skipped as churned", titles(e.tasks("gone")))
	}
}

// TestCooldown: the same play for the same account inside its cooldown is
// recorded as held and does nothing.
func TestCooldown(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	at := e.clk.Now()
	// The signal opens, closes and opens again: each opening is a trigger.
	for _, d := range []time.Duration{0, 24 * time.Hour, 8 * 24 * time.Hour} {
		e.health(risk("a", "usage_drop_30d", at.Add(d)))
		e.health(closed(risk("a", "usage_drop_30d", at.Add(d)), at.Add(d+time.Hour)))
	}
	fs := e.firings("a")
	if len(fs) != 3 {
		t.Fatalf("%d firings, want 3", len(fs))
	}
	// Newest first.
	if fs[0].GetHeld() != "" || !strings.HasPrefix(fs[1].GetHeld(), "cooldown until ") || fs[2].GetHeld() != "" {
		t.Errorf("held = %q, %q, %q; want only the second held by the cooldown", fs[2].GetHeld(), fs[1].GetHeld(), fs[0].GetHeld())
	}
	if n := len(e.tasks("a")); n != 2 {
		t.Errorf("%d tasks, want 2", n)
	}
}

// TestRetrySameIDThenDeadThenRedeliver: a receiver failing with 500 gets
// the same webhook-id on the retry; one answering 410 puts the delivery on
// the dead-letter list, from which Redeliver sends it again with its id.
func TestRetrySameIDThenDeadThenRedeliver(t *testing.T) {
	rcv := newReceiver(t)
	var gone bool
	rcv.answer = func(path string, n int) int {
		rcv.t.Helper()
		switch {
		case path != "/hook":
			return 200
		case n == 0:
			return 500
		case gone:
			return 410
		}
		return 200
	}
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	e.health(risk("r", "usage_drop_30d", e.clk.Now()))
	waitFor(t, "the first attempt's outcome", func() bool {
		ds := e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_PENDING)
		return len(ds) == 1 && ds[0].GetAttempts() == 1
	})
	pending := e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_PENDING)[0]
	if pending.GetLastStatus() != 500 || pending.GetNextAttemptAt() == nil {
		t.Fatalf("after a 500: %v", pending)
	}
	// Within the receiver's five-minute timestamp tolerance: it checks
	// webhook-timestamp against the wall clock.
	e.clk.Advance(time.Minute)
	got := rcv.wait(1)
	if got[0].id != pending.GetDeliveryId() {
		t.Errorf("retry carries webhook-id %s, want %s", got[0].id, pending.GetDeliveryId())
	}

	rcv.mu.Lock()
	gone = true
	rcv.mu.Unlock()
	e.health(risk("s", "usage_drop_30d", e.clk.Now()))
	waitFor(t, "a dead delivery", func() bool { return len(e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_DEAD)) == 1 })
	dead := e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_DEAD)[0]
	if dead.GetLastStatus() != 410 {
		t.Errorf("dead delivery %v, want last status 410", dead)
	}
	rcv.mu.Lock()
	gone = false
	rcv.mu.Unlock()
	if _, err := e.svc.Redeliver(context.Background(), ws, []string{"nope"}, ""); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("Redeliver of an unknown id: %v, want NotFound", err)
	}
	n, err := e.svc.Redeliver(context.Background(), ws, nil, "crm")
	if err != nil || n != 1 {
		t.Fatalf("Redeliver = %d, %v", n, err)
	}
	got = rcv.wait(2)
	if got[1].id != dead.GetDeliveryId() {
		t.Errorf("redelivery carries webhook-id %s, want %s", got[1].id, dead.GetDeliveryId())
	}
	waitFor(t, "redelivered", func() bool { return len(e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_DELIVERED)) == 2 })
}

// TestOutboxResumesAfterRestart: deliveries decided while the receiver
// was down are still pending when the service stops, and a new service
// over the same file delivers them with their ids.
func TestOutboxResumesAfterRestart(t *testing.T) {
	rcv := newReceiver(t)
	down := true
	rcv.answer = func(string, int) int {
		if down {
			return 503
		}
		return 200
	}
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	for i := range 5 {
		e.health(risk(fmt.Sprintf("acct-%d", i), "usage_drop_30d", e.clk.Now()))
	}
	waitFor(t, "five failed attempts", func() bool {
		n := 0
		for _, d := range e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_PENDING) {
			if d.GetAttempts() > 0 {
				n++
			}
		}
		return n == 5
	})
	ids := map[string]bool{}
	for _, d := range e.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_PENDING) {
		ids[d.GetDeliveryId()] = true
	}
	e.stop()
	rcv.mu.Lock()
	down = false
	rcv.mu.Unlock()
	e2 := openEnv(t, e.path, e.clk, rcv)
	e2.clk.Advance(time.Minute)
	got := rcv.wait(5)
	for _, d := range got {
		if !ids[d.id] {
			t.Errorf("delivered id %s, not one of the pending %v", d.id, ids)
		}
	}
	waitFor(t, "all delivered", func() bool { return len(e2.deliveriesOf(playsv1.DeliveryState_DELIVERY_STATE_DELIVERED)) == 5 })
}

// TestApply: identical files store nothing; a bad file is refused naming
// its lines and leaves the active version alone; secrets never come back.
func TestApply(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	file := playsFile(t, rcv)
	v1 := e.apply(file)
	if v1.GetVersion() != 1 || len(v1.GetPlays()) != 5 {
		t.Fatalf("first apply: %v", v1)
	}
	v, unchanged, err := e.svc.ApplyPlays(context.Background(), ws, "# same plays, new comment\n"+file, false)
	if err != nil || !unchanged || v.GetVersion() != 1 {
		t.Errorf("re-apply = version %d, unchanged %t, %v; want version 1 unchanged", v.GetVersion(), unchanged, err)
	}
	bad := strings.Replace(file, `record.type == "pql"`, `record.type ==`, 1)
	_, _, err = e.svc.ApplyPlays(context.Background(), ws, bad, false)
	var fe *apierr.FieldError
	if !errors.As(err, &fe) || !strings.Contains(fe.Error(), "plays[2].when") || !strings.Contains(fe.Error(), "line ") {
		t.Errorf("bad CEL: %v, want a field error naming plays[2].when and its line", err)
	}
	got, err := e.svc.GetPlays(ws)
	if err != nil || got.GetPlays().GetVersion() != 1 {
		t.Fatalf("GetPlays after a refused file: %v, %v", got, err)
	}
	if strings.Contains(got.GetYaml(), testSecret) || !strings.Contains(got.GetYaml(), play.Redacted) {
		t.Errorf("GetPlays returns the secret:\n%s", got.GetYaml())
	}
	// A private address is refused unless the deployment allows it.
	strict := New(Options{DB: e.db, Clock: e.clk, Engine: e.engine})
	_, _, err = strict.ApplyPlays(context.Background(), ws, file, true)
	if !errors.As(err, &fe) || !strings.Contains(fe.Error(), "destinations[0].url") {
		t.Errorf("loopback destination with the default policy: %v, want refused at destinations[0].url", err)
	}
	if _, err := e.svc.GetPlays("other"); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("GetPlays of a workspace without plays: %v, want NotFound", err)
	}
}

// TestTaskLifecycle: a task is closed by its owner with who and when,
// reopened, and expires when left open past its due date.
func TestTaskLifecycle(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	at := e.clk.Now()
	e.routing(assignment("p1", "x", routingv1.HandoffType_HANDOFF_TYPE_PQL, "sam", at), assignment("p2", "y", routingv1.HandoffType_HANDOFF_TYPE_PQL, "lena", at))
	kx, ky := e.tasks("x")[0], e.tasks("y")[0]
	done, err := e.svc.UpdateTask(context.Background(), ws, kx.GetTaskId(), playsv1.TaskState_TASK_STATE_DONE, "called", "key k1")
	if err != nil || done.GetState() != playsv1.TaskState_TASK_STATE_DONE || done.GetClosedBy() != "key k1" || done.GetNote() != "called" {
		t.Fatalf("done: %v, %v", done, err)
	}
	if _, err := e.svc.UpdateTask(context.Background(), ws, kx.GetTaskId(), playsv1.TaskState_TASK_STATE_SKIPPED, "", "key k1"); !errors.Is(err, apierr.ErrFailedPrecondition) {
		t.Errorf("closing a done task: %v, want FailedPrecondition", err)
	}
	if _, err := e.svc.UpdateTask(context.Background(), ws, "t_404", playsv1.TaskState_TASK_STATE_DONE, "", "k"); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("unknown task: %v, want NotFound", err)
	}
	e.clk.Advance(4*time.Hour + e.svc.taskExpiry + time.Minute)
	if _, err := e.svc.FireTimers(context.Background(), e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := e.tasks("y")[0]; got.GetState() != playsv1.TaskState_TASK_STATE_EXPIRED || got.GetTaskId() != ky.GetTaskId() {
		t.Errorf("left open past due: %v, want expired", got)
	}
	if got := e.tasks("x")[0]; got.GetState() != playsv1.TaskState_TASK_STATE_DONE {
		t.Errorf("a done task changed on expiry: %v", got)
	}
}

// TestSignalUpdateIsNoOpening: a signal's record coming again while it
// stays open (its attributes changed) fires nothing; closing and opening
// again does.
func TestSignalUpdateIsNoOpening(t *testing.T) {
	e := newEnv(t, nil)
	e.apply(playsFile(t, newReceiver(t)))
	at := e.clk.Now()
	e.health(renewal("r", 90, "neutral", at))
	n := len(e.tasks("r"))
	if n == 0 {
		t.Fatal("no renewal tasks")
	}
	e.health(renewal("r", 90, "at_risk", at.Add(time.Hour)))
	if got := len(e.tasks("r")); got != n {
		t.Errorf("%d tasks after the open signal's band changed, want %d", got, n)
	}
	e.health(closed(renewal("r", 90, "at_risk", at), at.Add(2*time.Hour)), renewal("r", 90, "at_risk", at.Add(3*time.Hour)))
	if got := len(e.tasks("r")); got <= n {
		t.Errorf("%d tasks after the signal closed and opened again, want more than %d", got, n)
	}
}

// TestForget: a tombstone erases the account's tasks and deliveries.
func TestForget(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	e.apply(playsFile(t, rcv))
	e.routing(assignment("p1", "x", routingv1.HandoffType_HANDOFF_TYPE_PQL, "sam", e.clk.Now()))
	rcv.wait(2)
	e.routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Tombstone{Tombstone: tombstone("x")}})
	if got := e.tasks("x"); len(got) != 0 {
		t.Errorf("tasks after a tombstone: %q", titles(got))
	}
	waitFor(t, "deliveries forgotten", func() bool {
		ds, _, _, err := e.svc.ListDeliveries(ws, &playsv1.ListDeliveriesRequest{AccountId: "x"}, nil, 100)
		return err == nil && len(ds) == 0
	})
}

// TestDemoPlaysCompile: the plays file `cairn run` applies to the demo
// workspace compiles under the default address policy.
func TestDemoPlaysCompile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "cmd", "cairn", "internal", "demo", "plays.yaml"))
	if err != nil {
		t.Skipf("not in the repository: %v", err)
	}
	set, err := play.Load(b, func(u string) error { return deliver.CheckURL(u, deliver.Policy{}) })
	if err != nil {
		t.Fatalf("demo plays: %v", err)
	}
	if len(set.Plays()) < 5 {
		t.Errorf("demo plays has %d plays", len(set.Plays()))
	}
}

// TestDueOnBusinessHours: "due: 4h" for an owner working 09:00-17:00 in
// Berlin, given on Friday at 16:00, is due on Monday at 12:00; a task for
// an owner the directory does not know is due in calendar time.
func TestDueOnBusinessHours(t *testing.T) {
	e := newEnv(t, nil)
	e.apply(playsFile(t, newReceiver(t)))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip(err)
	}
	d := NewDirectory()
	d.Set(ws, []*routingv1.Owner{{OwnerId: "lena", TimeZone: "Europe/Berlin"}})
	e.svc.directory = d
	fri := time.Date(2031, 1, 3, 16, 0, 0, 0, berlin)
	e.routing(assignment("p1", "x", routingv1.HandoffType_HANDOFF_TYPE_PQL, "lena", fri), assignment("p2", "y", routingv1.HandoffType_HANDOFF_TYPE_PQL, "sam", fri))
	if got, want := e.tasks("x")[0].GetDueAt().AsTime(), time.Date(2031, 1, 6, 12, 0, 0, 0, berlin); !got.Equal(want) {
		t.Errorf("lena's task due %v, want %v (4 business hours)", got.In(berlin), want)
	}
	if got, want := e.tasks("y")[0].GetDueAt().AsTime(), fri.Add(4*time.Hour); !got.Equal(want) {
		t.Errorf("sam's task due %v, want %v (calendar time: not in the directory)", got, want)
	}
}
