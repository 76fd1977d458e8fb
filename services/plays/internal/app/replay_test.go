package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// upstream is the three logs plays reads, kept in this process: records
// are appended to them and applied live with their offsets, and a replay
// reads them again.
type upstream struct {
	stages, health, routing *stream.Log
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	db := storetest.Open(t)
	u := &upstream{}
	for name, l := range map[string]**stream.Log{"stages": &u.stages, "health": &u.health, "routing": &u.routing} {
		var err error
		if *l, err = stream.OpenLog(db, name, stream.LogOptions{Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// decode reads a stored record as Subscribe sends it: with its offset
// and partition.
func decode[T interface {
	proto.Message
	*M
}, M any](set func(T, uint64, uint32)) func(stream.Record) (T, error) {
	return func(r stream.Record) (T, error) {
		m := T(new(M))
		if err := proto.Unmarshal(r.Data, m); err != nil {
			return m, err
		}
		set(m, r.Offset, r.Partition)
		return m, nil
	}
}

func (u *upstream) sources() *Sources {
	return &Sources{
		Partitions: 1,
		Stages:     stream.LocalSource(u.stages, decode(func(r *stagesv1.LogRecord, o uint64, p uint32) { r.Offset, r.Partition = o, p })),
		Health:     stream.LocalSource(u.health, decode(func(r *healthv1.LogRecord, o uint64, p uint32) { r.Offset, r.Partition = o, p })),
		Routing: []stream.Source[*routingv1.LogRecord]{
			stream.LocalSource(u.routing, decode(func(r *routingv1.LogRecord, o uint64, p uint32) { r.Offset, r.Partition = o, p })),
		},
	}
}

// liveHealth appends r to the health log and applies it live, with its
// offset, as the consumer would.
func (u *upstream) liveHealth(t *testing.T, e *env, r *healthv1.LogRecord) {
	t.Helper()
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	off, err := u.health.Append(context.Background(), 0, data)
	if err != nil {
		t.Fatal(err)
	}
	r.Offset = off
	if err := e.db.Commit(context.Background(), func(tx *pstore.Tx) error { return e.svc.ApplyHealth(tx, 0, []*healthv1.LogRecord{r}) }); err != nil {
		t.Fatal(err)
	}
}

func (e *env) replay(ids []string, since time.Time) *playsv1.Replay {
	e.t.Helper()
	r, err := e.svc.StartReplay(context.Background(), ws, ids, since)
	if err != nil {
		e.t.Fatalf("StartReplay: %v", err)
	}
	e.svc.WaitReplays()
	got, err := e.svc.GetReplay(ws, r.GetReplayId())
	if err != nil {
		e.t.Fatal(err)
	}
	if got.GetState() != playsv1.ReplayState_REPLAY_STATE_DONE {
		e.t.Fatalf("replay %s: %v", got.GetState(), got)
	}
	return got
}

// TestReplayOnlyOnRequestNeverTwice: a play added later fires over the
// history only when a replay is asked for; a play that fired live does not
// fire again in the replay, and a second replay fires nothing.
func TestReplayOnlyOnRequestNeverTwice(t *testing.T) {
	rcv := newReceiver(t)
	e := newEnv(t, rcv)
	u := newUpstream(t)
	e.svc.sources = u.sources()
	file := playsFile(t, rcv)
	e.apply(file)
	t0 := e.clk.Now()
	for i, acct := range []string{"a1", "a2", "a3"} {
		u.liveHealth(t, e, risk(acct, "usage_drop_30d", t0.Add(time.Duration(i)*24*time.Hour)))
	}
	rcv.wait(3)
	// A new play over the same signals: nothing happens to the history
	// until a replay is asked for.
	e.apply(file + `
  - id: risk-review
    name: Review every risk signal
    on: [signal.opened]
    when: record.kind == "risk"
    actions:
      - task: {title: "Review the risk", owner: csm, due: 1d}
`)
	for _, acct := range []string{"a1", "a2", "a3"} {
		if n := len(e.tasks(acct)); n != 1 {
			t.Fatalf("%s has %d tasks before any replay, want the live usage-drop task only", acct, n)
		}
	}
	r := e.replay([]string{"usage-drop", "risk-review"}, time.Time{})
	if r.GetFired() != 3 || r.GetAlreadyFired() != 3 || r.GetRecordsRead() != 3 || r.GetRecordsTotal() != 3 {
		t.Errorf("replay = fired %d, already fired %d, read %d of %d; want 3, 3, 3 of 3", r.GetFired(), r.GetAlreadyFired(), r.GetRecordsRead(), r.GetRecordsTotal())
	}
	for _, acct := range []string{"a1", "a2", "a3"} {
		var review int
		for _, k := range e.tasks(acct) {
			if k.GetTitle() == "Review the risk" {
				review++
			}
		}
		if review != 1 {
			t.Errorf("%s: %d review tasks, want 1: %q", acct, review, titles(e.tasks(acct)))
		}
	}
	if got := len(rcv.deliveries()); got != 3 {
		t.Errorf("%d webhooks after the replay, want the 3 live ones: a replay never re-sends", got)
	}
	var replayed int
	for _, f := range e.firings("a1") {
		if f.GetReplayId() == r.GetReplayId() {
			replayed++
		}
	}
	if replayed != 1 {
		t.Errorf("a1 has %d firings of the replay, want 1", replayed)
	}
	again := e.replay([]string{"usage-drop", "risk-review"}, time.Time{})
	if again.GetFired() != 0 || again.GetAlreadyFired() != 6 {
		t.Errorf("second replay fired %d, already fired %d; want 0 and 6", again.GetFired(), again.GetAlreadyFired())
	}
}

// TestReplaySince: records before since do not fire; the account facts
// they carry still count (here: a churn before since keeps a later signal
// from firing).
func TestReplaySince(t *testing.T) {
	e := newEnv(t, nil)
	u := newUpstream(t)
	e.svc.sources = u.sources()
	t0 := e.clk.Now()
	for i, acct := range []string{"b1", "b2", "b3"} {
		u.liveHealth(t, e, risk(acct, "usage_drop_30d", t0.Add(time.Duration(i)*24*time.Hour)))
	}
	e.apply(playsFile(t, newReceiver(t)))
	r := e.replay([]string{"usage-drop"}, t0.Add(36*time.Hour))
	if r.GetFired() != 1 {
		t.Errorf("replay since day 1.5 fired %d, want 1 (b3 only)", r.GetFired())
	}
	if n := len(e.tasks("b3")); n != 1 {
		t.Errorf("b3 has %d tasks, want 1", n)
	}
	if n := len(e.tasks("b1")); n != 0 {
		t.Errorf("b1 has %d tasks, want none (before since)", n)
	}
}

func TestReplayRefusals(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.svc.StartReplay(context.Background(), ws, []string{"x"}, time.Time{}); err == nil || !strings.Contains(err.Error(), "no upstream logs") {
		t.Errorf("replay without sources: %v", err)
	}
	e.svc.sources = newUpstream(t).sources()
	if _, err := e.svc.StartReplay(context.Background(), ws, []string{"x"}, time.Time{}); err == nil || !strings.Contains(err.Error(), "no plays") {
		t.Errorf("replay without plays: %v", err)
	}
	e.apply(playsFile(t, newReceiver(t)))
	if _, err := e.svc.StartReplay(context.Background(), ws, []string{"usage-drop", "nope"}, time.Time{}); err == nil || !strings.Contains(err.Error(), "play_ids[1]") {
		t.Errorf("replay of an unknown play: %v", err)
	}
}
