package deliver

import (
	"context"
	"math"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestSign(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for _, body := range [][]byte{nil, []byte(`{"a":1}`), []byte("ünïcode\x00\n")} {
		want, _ := wh.Sign("msg_1", ts, body)
		got, err := Sign(testSecret, "msg_1", ts, body)
		if err != nil || got != want {
			t.Errorf("Sign(%q) = %q, %v; want %q", body, got, err, want)
		}
		// The prefix is optional.
		if got2, _ := Sign(testSecret[len("whsec_"):], "msg_1", ts, body); got2 != want {
			t.Errorf("Sign without prefix = %q, want %q", got2, want)
		}
	}
	// The example from the Standard Webhooks specification.
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; err != nil || got != want {
		t.Errorf("spec example: %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := Sign(bad, "id", ts, nil); err == nil {
			t.Errorf("Sign with secret %q succeeded", bad)
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		rand     float64
		attempts int
		want     time.Duration
	}{
		{"first, top of jitter", 0.999999, 1, 999999 * time.Microsecond},
		{"first, half", 0.5, 1, 500 * time.Millisecond},
		{"third doubles twice", 0.5, 3, 2 * time.Second},
		{"capped", 0.5, 20, 30 * time.Minute},
		{"huge attempts", 0.5, 1000, 30 * time.Minute},
		{"zero jitter", 0, 5, 0},
		{"NaN from a bad source", math.NaN(), 1, 500 * time.Millisecond},
		{"out of range source", 7, 1, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Options{Record: func(context.Context, []Outcome) error { return nil }, Rand: func() float64 { return tc.rand }})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.backoff(tc.attempts); got != tc.want {
				t.Errorf("backoff(%d) = %v, want %v", tc.attempts, got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"99999999999999999999999", 0, false},
		{"18446744073709551615", time.Duration(1<<63-1) / time.Second * time.Second, true},
		{"Sun, 01 Mar 2026 12:01:00 GMT", time.Minute, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},
		{"tomorrow", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBreakerStates(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := breaker{threshold: 2, cooldown: 10 * time.Second}
	steps := []struct {
		name  string
		do    func()
		state string
		at    time.Duration // when the state is read
	}{
		{"starts closed", func() {}, "closed", 0},
		{"one failure", func() { b.record(b.launch(), false, t0) }, "closed", 0},
		{"success resets", func() { b.record(b.launch(), true, t0) }, "closed", 0},
		{"two failures open", func() { b.record(b.launch(), false, t0); b.record(b.launch(), false, t0) }, "open", 0},
		{"stale result ignored", func() { b.record(0, true, t0) }, "open", 0},
		{"still open before cooldown", func() {
			if n, blocked := b.allow(t0.Add(9*time.Second), 4); n != 0 || !blocked {
				t.Errorf("allow = %d, %v while open", n, blocked)
			}
		}, "open", 9 * time.Second},
		{"one probe after cooldown", func() {
			if n, _ := b.allow(t0.Add(10*time.Second), 4); n != 1 {
				t.Errorf("allow = %d in half-open, want 1", n)
			}
			g := b.launch()
			if n, blocked := b.allow(t0.Add(10*time.Second), 3); n != 0 || !blocked {
				t.Errorf("allow = %d, %v with the probe in flight", n, blocked)
			}
			b.record(g, false, t0.Add(11*time.Second))
			if got := b.describe(t0.Add(21 * time.Second)); got != "half-open" {
				t.Errorf("state %s once the new cooldown ended, want half-open", got)
			}
		}, "open", 20 * time.Second},
		{"probe success closes", func() {
			b.allow(t0.Add(21*time.Second), 4)
			b.record(b.launch(), true, t0.Add(21*time.Second))
		}, "closed", 21 * time.Second},
	}
	for _, s := range steps {
		s.do()
		if got := b.describe(t0.Add(s.at)); got != s.state {
			t.Fatalf("%s: state %s, want %s", s.name, got, s.state)
		}
	}
}
