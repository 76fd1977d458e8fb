package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var fixedNow = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func ndjson(t *testing.T, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteNDJSON(&buf, Generate(opts).Events); err != nil {
		t.Fatalf("WriteNDJSON: %v", err)
	}
	return buf.Bytes()
}

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		golden string
	}{
		{name: "seed 1, 40 accounts", opts: Options{Seed: 1, Accounts: 40, Now: fixedNow}, golden: "seed1_40.sha256"},
		{name: "seed 7, 25 accounts, hour of now ignored", opts: Options{Seed: 7, Accounts: 25, Now: fixedNow.Add(13 * time.Hour)}, golden: "seed7_25.sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := ndjson(t, tt.opts), ndjson(t, tt.opts)
			if !bytes.Equal(a, b) {
				t.Fatal("two runs with the same options produced different bytes")
			}
			sum := sha256.Sum256(a)
			got := hex.EncodeToString(sum[:])
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if got != strings.TrimSpace(string(want)) {
				t.Errorf("hash = %s, golden %s: the generator's output changed; rerun with -update if intended", got, strings.TrimSpace(string(want)))
			}
		})
	}
}

func TestGenerateSeedsDiffer(t *testing.T) {
	a := ndjson(t, Options{Seed: 1, Accounts: 20, Now: fixedNow})
	b := ndjson(t, Options{Seed: 2, Accounts: 20, Now: fixedNow})
	if bytes.Equal(a, b) {
		t.Fatal("seeds 1 and 2 produced identical workspaces")
	}
}

func TestGenerateWellFormed(t *testing.T) {
	ds := Generate(Options{Seed: 3, Accounts: 60, Now: fixedNow})
	// Existing customers' history is backfilled from before the year: their
	// contract began up to 330 days earlier, the deal 90 days before that.
	start := fixedNow.AddDate(0, 0, -365-330-91)
	ids := map[string]bool{}
	accounts := map[string]bool{}
	for _, a := range ds.Accounts {
		if accounts[a.ID] {
			t.Errorf("account id %q used twice", a.ID)
		}
		accounts[a.ID] = true
	}
	for i, ev := range ds.Events {
		if ev.MessageID == "" || ids[ev.MessageID] {
			t.Fatalf("event %d: message id %q empty or repeated", i, ev.MessageID)
		}
		ids[ev.MessageID] = true
		if len(ev.MessageID) >= 100 {
			t.Errorf("event %d: message id longer than 99 characters", i)
		}
		if ev.UserID == "" && ev.AnonymousID == "" {
			t.Errorf("event %d (%s %s): neither userId nor anonymousId", i, ev.Type, ev.Event)
		}
		if ev.Timestamp.After(fixedNow) || ev.Timestamp.Before(start) {
			t.Errorf("event %d at %v: outside the simulated period", i, ev.Timestamp)
		}
		if i > 0 && ev.Timestamp.Before(ds.Events[i-1].Timestamp) {
			t.Fatalf("event %d: not in timestamp order", i)
		}
		switch ev.Type {
		case "track":
			if ev.Event == "" {
				t.Errorf("event %d: track without event name", i)
			}
		case "group":
			if !accounts[ev.GroupID] {
				t.Errorf("event %d: group call for unknown account %q", i, ev.GroupID)
			}
		case "identify", "page":
		default:
			t.Errorf("event %d: unexpected type %q", i, ev.Type)
		}
		if g, ok := ev.Context["groupId"].(string); ok && !accounts[g] {
			t.Errorf("event %d: context.groupId %q is not a generated account", i, g)
		}
	}
}

// TestGenerateDistribution checks the relationships health models are meant
// to find, over a workspace large enough for averages to be stable.
func TestGenerateDistribution(t *testing.T) {
	ds := Generate(Options{Seed: 42, Accounts: 300, Now: fixedNow})
	var churned, renewed []float64
	segments := map[string]int{}
	names := map[string]int{}
	for _, a := range ds.Accounts {
		segments[a.Segment]++
		if !a.Customer {
			continue
		}
		if a.Churned {
			churned = append(churned, a.Utilization)
		} else if a.Renewals > 0 {
			renewed = append(renewed, a.Utilization)
		}
	}
	for _, ev := range ds.Events {
		names[ev.Type+":"+ev.Event]++
	}
	if len(churned) < 5 || len(renewed) < 5 {
		t.Fatalf("too few outcomes to compare: %d churned, %d renewed", len(churned), len(renewed))
	}
	if mc, mr := mean(churned), mean(renewed); mc >= mr-0.05 {
		t.Errorf("mean seat utilisation of churned accounts %.2f is not clearly below renewed %.2f", mc, mr)
	}
	for _, seg := range []string{SegmentSMB, SegmentMidMarket, SegmentEnterprise} {
		if segments[seg] < 20 {
			t.Errorf("segment %s has %d accounts, want a real share of 300", seg, segments[seg])
		}
	}
	for _, name := range []string{
		"page:", "identify:", "group:", "track:content_downloaded", "track:demo_requested", "track:trial_started",
		"track:crm.lead_created", "track:crm.mql", "track:crm.sql_accepted", "track:crm.contacted", "track:crm.meeting_booked",
		"track:crm.opportunity_stage_changed", "track:crm.closed_won", "track:crm.closed_lost",
		"track:billing.subscription_started", "track:billing.contract_updated", "track:billing.renewed", "track:billing.churned",
		"track:support.ticket_opened", "track:support.ticket_resolved", "track:survey.nps", "track:meeting.qbr_held",
		"track:report_created", "track:dashboard_shared", "track:integration.connected", "track:alert_created", "track:export_run",
		"track:workflow_created", "track:api_key_created", "track:setup_completed", "track:activated", "track:content_viewed",
		"track:email_clicked", "track:webinar_attended", "track:security_review_approved", "track:poc_started",
	} {
		if names[name] == 0 {
			t.Errorf("no %s events in a 300-account year", name)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		Generate(Options{Seed: 1, Accounts: 300, Now: fixedNow})
	}
}

func TestIdentified(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   int
	}{
		{"none", nil, 0},
		{"anonymous visits only", []Event{{Type: "page", AnonymousID: "a1"}}, 0},
		{"by context and by group call, counted once", []Event{
			{Type: "track", Context: map[string]any{"groupId": "acme"}},
			{Type: "group", GroupID: "acme"},
			{Type: "group", GroupID: "globex"},
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Dataset{Events: tt.events}).Identified(); got != tt.want {
				t.Fatalf("Identified() = %d, want %d", got, tt.want)
			}
		})
	}
}
