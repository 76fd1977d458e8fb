package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
)

// playsState is what fakePlays remembers between calls.
type playsState struct {
	applied string // the YAML of the stored version
	version uint32
	sent    []*playsv1.ApplyPlaysRequest
	updates []*playsv1.UpdateTaskRequest
}

type fakePlays struct {
	playsv1.UnimplementedPlaysServiceServer
	*fakes
}

// playsKinds are the trigger kinds the fake knows (the service's list).
var playsKinds = []string{
	"stage.entered", "stage.exited", "status.churned", "status.won_back", "signal.opened", "signal.closed", "health.band_changed",
	"assignment.created", "assignment.reassigned", "assignment.closed", "sla.warning", "sla.breach", "sla.escalation", "sla.met",
}

// checkPlays finds a few of the problems the service finds, each with its
// line in the YAML sent, as the service reports them: unknown fields,
// unknown trigger kinds, actions naming an unknown destination.
func checkPlays(src string) (*playsv1.PlaysVersion, []apierr.Violation) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil || len(doc.Content) == 0 {
		return nil, []apierr.Violation{{Field: "file", Description: fmt.Sprintf("not YAML: %v", err)}}
	}
	top := doc.Content[0]
	v := &playsv1.PlaysVersion{Playbooks: []string{"renewal", "onboarding"}}
	var vs []apierr.Violation
	dests := map[string]bool{}
	var plays *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, val := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "destinations":
			for _, d := range val.Content {
				id := field(d, "id").Value
				dests[id] = true
				v.Destinations = append(v.Destinations, &playsv1.Destination{DestinationId: id, Type: field(d, "type").Value})
			}
		case "plays":
			plays = val
		case "playbooks":
			for _, pb := range val.Content {
				v.Playbooks = append(v.Playbooks, field(pb, "id").Value)
			}
		default:
			vs = append(vs, apierr.Violation{Field: k.Value, Description: fmt.Sprintf("line %d: field %s not found in type play.File", k.Line, k.Value)})
		}
	}
	if plays == nil {
		return nil, append(vs, apierr.Violation{Field: "plays", Description: "required"})
	}
	for i, p := range plays.Content {
		ps := &playsv1.PlaySummary{PlayId: field(p, "id").Value}
		for j, on := range field(p, "on").Content {
			if !slices.Contains(playsKinds, on.Value) {
				vs = append(vs, apierr.Violation{Field: fmt.Sprintf("plays[%d].on[%d]", i, j), Description: fmt.Sprintf("line %d: unknown trigger kind %q", on.Line, on.Value)})
			}
			ps.On = append(ps.On, on.Value)
		}
		for j, a := range field(p, "actions").Content {
			kind, body := a.Content[0].Value, a.Content[1]
			if kind == "playbook" {
				ps.Actions = append(ps.Actions, "playbook: "+body.Value)
				continue
			}
			if d := field(body, "destination"); d.Value != "" {
				if !dests[d.Value] {
					vs = append(vs, apierr.Violation{Field: fmt.Sprintf("plays[%d].actions[%d].%s.destination", i, j, kind), Description: fmt.Sprintf("line %d: unknown destination %q", d.Line, d.Value)})
				}
				ps.Actions = append(ps.Actions, kind+": "+d.Value)
				continue
			}
			ps.Actions = append(ps.Actions, kind+": "+field(body, "title").Value)
		}
		v.Plays = append(v.Plays, ps)
	}
	return v, vs
}

// field is the value of key in a mapping node (an empty node when absent).
func field(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return &yaml.Node{}
}

func (f fakePlays) ApplyPlays(ctx context.Context, req *playsv1.ApplyPlaysRequest) (*playsv1.ApplyPlaysResponse, error) {
	if err := f.record(ctx, "ApplyPlays"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plays.sent = append(f.plays.sent, req)
	v, problems := checkPlays(req.GetYaml())
	if len(problems) > 0 {
		return nil, apierr.Status(nil, "ApplyPlays", apierr.Fields("invalid plays file", problems))
	}
	v.AppliedAt = timestamppb.New(t0)
	switch {
	case req.GetDryRun():
		return &playsv1.ApplyPlaysResponse{Plays: v}, nil
	case req.GetYaml() == f.plays.applied:
		v.Version = f.plays.version
		return &playsv1.ApplyPlaysResponse{Plays: v, Unchanged: true}, nil
	}
	f.plays.version++
	f.plays.applied, v.Version = req.GetYaml(), f.plays.version
	return &playsv1.ApplyPlaysResponse{Plays: v}, nil
}

func (f fakePlays) GetPlays(ctx context.Context, req *playsv1.GetPlaysRequest) (*playsv1.GetPlaysResponse, error) {
	if err := f.record(ctx, "GetPlays"); err != nil {
		return nil, err
	}
	if req.GetWorkspace() == "empty" {
		return nil, apierr.Status(nil, "GetPlays", apierr.NotFound("workspace %q has no plays: apply a plays file with cairn apply -f plays.yaml", req.GetWorkspace()))
	}
	return &playsv1.GetPlaysResponse{
		Plays: &playsv1.PlaysVersion{Workspace: "acme", Version: 3, AppliedAt: timestamppb.New(t0), Playbooks: []string{"renewal", "onboarding", "qbr"},
			Plays: []*playsv1.PlaySummary{
				{PlayId: "pql-follow-up", Name: "PQL follow-up", On: []string{"assignment.created"}, When: `record.type == "pql"`, Cooldown: durationpb.New(24 * time.Hour),
					Actions: []string{"task: Call the PQL within the SLA (sdr, due in 4h)", "slack: cs-slack"}},
				{PlayId: "sla-breach", On: []string{"sla.breach", "sla.escalation"}, Conditions: `account.status == "active"`, Actions: []string{"playbook: qbr"}},
			},
			Destinations: []*playsv1.Destination{
				{DestinationId: "crm-webhook", Type: "webhook", Url: "https://hooks.example.com/cairn", Signed: true, Concurrency: 8},
				{DestinationId: "cs-slack", Type: "slack", Url: "https://hooks.slack.com/services/T000/B000/XXXX"},
			}},
		Yaml: "destinations:\n  - id: crm-webhook\n    type: webhook\n    secret: <redacted>\nplays: []",
	}, nil
}

// pageOf serves canned lists two items a page: "p2" is the second page.
func pageOf[T any](items []T, token string) ([]T, *commonv1.PageResponse, error) {
	switch {
	case token == "p2" && len(items) > 2:
		return items[2:], nil, nil
	case token == "p2":
		return nil, nil, nil
	case token != "":
		return nil, nil, apierr.Status(nil, "", apierr.Field("page.page_token", "not a token of this list"))
	case len(items) > 2:
		return items[:2], &commonv1.PageResponse{NextPageToken: "p2"}, nil
	}
	return items, nil, nil
}

func cannedTasks() []*playsv1.Task {
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	return []*playsv1.Task{
		{TaskId: "t_12", AccountId: "acme", PlayId: "pql-follow-up", Title: "Call the PQL within the SLA", OwnerId: "alice", OwnerRole: "sdr",
			State: playsv1.TaskState_TASK_STATE_OPEN, CreatedAt: at(0), DueAt: at(4 * time.Hour), Why: "assignment.created: pql handoff as-1 to alice"},
		{TaskId: "t_15", AccountId: "globex", PlayId: "renewal", PlaybookId: "renewal", Step: 2, Title: "Send the renewal proposal", OwnerId: "carol", OwnerRole: "csm",
			State: playsv1.TaskState_TASK_STATE_SCHEDULED, CreatedAt: at(0), StartsAt: at(14 * 24 * time.Hour), DueAt: at(16 * 24 * time.Hour),
			Why: "signal.opened: health signal renewal_window_90 opened: contract ends in 88 days"},
		{TaskId: "t_20", AccountId: "initech", PlayId: "sla-breach", Title: "Breached SLA: take it over", OwnerRole: "pool:team-leads",
			State: playsv1.TaskState_TASK_STATE_OPEN, CreatedAt: at(time.Hour), Why: "sla.breach: mql handoff as-2 breached its 4h SLA"},
		{TaskId: "t_9", AccountId: "acme", PlayId: "churned", Title: "Churn post-mortem", OwnerId: "head-of-cs", OwnerRole: "owner:head-of-cs",
			State: playsv1.TaskState_TASK_STATE_DONE, CreatedAt: at(-48 * time.Hour), DueAt: at(-24 * time.Hour), ClosedAt: at(-30 * time.Hour), ClosedBy: "key key_0001",
			Why: "status.churned: acme churned"},
	}
}

func (f fakePlays) ListTasks(ctx context.Context, req *playsv1.ListTasksRequest) (*playsv1.ListTasksResponse, error) {
	if err := f.record(ctx, "ListTasks"); err != nil {
		return nil, err
	}
	var ks []*playsv1.Task
	for _, k := range cannedTasks() {
		if (req.GetAccountId() == "" || k.GetAccountId() == req.GetAccountId()) && (req.GetOwnerId() == "" || k.GetOwnerId() == req.GetOwnerId()) &&
			(req.GetState() == playsv1.TaskState_TASK_STATE_UNSPECIFIED || k.GetState() == req.GetState()) {
			ks = append(ks, k)
		}
	}
	items, page, err := pageOf(ks, req.GetPage().GetPageToken())
	return &playsv1.ListTasksResponse{Tasks: items, Page: page}, err
}

func (f fakePlays) UpdateTask(ctx context.Context, req *playsv1.UpdateTaskRequest) (*playsv1.UpdateTaskResponse, error) {
	if err := f.record(ctx, "UpdateTask"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.plays.updates = append(f.plays.updates, req)
	f.mu.Unlock()
	for _, k := range cannedTasks() {
		if k.GetTaskId() != req.GetTaskId() {
			continue
		}
		if k.GetState() == playsv1.TaskState_TASK_STATE_DONE && req.GetState() != playsv1.TaskState_TASK_STATE_OPEN {
			return nil, apierr.Status(nil, "UpdateTask", apierr.FailedPrecondition("task %q is already done; reopen it first (state TASK_STATE_OPEN)", k.GetTaskId()))
		}
		k.State, k.Note = req.GetState(), req.GetNote()
		return &playsv1.UpdateTaskResponse{Task: k}, nil
	}
	return nil, apierr.Status(nil, "UpdateTask", apierr.NotFound("task %q not found", req.GetTaskId()))
}

func cannedDeliveries() []*playsv1.Delivery {
	return []*playsv1.Delivery{
		{DeliveryId: "msg_1a2b3c4d_7", DestinationId: "crm-webhook", AccountId: "acme", PlayId: "pql-follow-up", Action: "webhook",
			State: playsv1.DeliveryState_DELIVERY_STATE_DELIVERED, Attempts: 1, CreatedAt: timestamppb.New(t0), LastAttemptAt: timestamppb.New(t0),
			LastStatus: 200, LastLatency: durationpb.New(85 * time.Millisecond)},
		{DeliveryId: "msg_1a2b3c4d_8", DestinationId: "cs-slack", AccountId: "acme", PlayId: "pql-follow-up", Action: "slack",
			State: playsv1.DeliveryState_DELIVERY_STATE_PENDING, Attempts: 2, CreatedAt: timestamppb.New(t0), NextAttemptAt: timestamppb.New(t0.Add(5 * time.Minute)),
			LastStatus: 503, LastError: "HTTP 503: Service Unavailable", LastLatency: durationpb.New(1234 * time.Millisecond)},
		{DeliveryId: "msg_1a2b3c4d_9", DestinationId: "crm-webhook", AccountId: "globex", PlayId: "churned", Action: "webhook",
			State: playsv1.DeliveryState_DELIVERY_STATE_DEAD, Attempts: 1, CreatedAt: timestamppb.New(t0.Add(time.Hour)),
			LastStatus: 410, LastError: "HTTP 410: refused by the receiver"},
	}
}

func (f fakePlays) ListDeliveries(ctx context.Context, req *playsv1.ListDeliveriesRequest) (*playsv1.ListDeliveriesResponse, error) {
	if err := f.record(ctx, "ListDeliveries"); err != nil {
		return nil, err
	}
	var ds []*playsv1.Delivery
	for _, d := range cannedDeliveries() {
		if (req.GetDestinationId() == "" || d.GetDestinationId() == req.GetDestinationId()) && (req.GetAccountId() == "" || d.GetAccountId() == req.GetAccountId()) &&
			(req.GetState() == playsv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED || d.GetState() == req.GetState()) {
			ds = append(ds, d)
		}
	}
	items, page, err := pageOf(ds, req.GetPage().GetPageToken())
	return &playsv1.ListDeliveriesResponse{Deliveries: items, Page: page}, err
}

func (f fakePlays) Redeliver(ctx context.Context, req *playsv1.RedeliverRequest) (*playsv1.RedeliverResponse, error) {
	if err := f.record(ctx, "Redeliver"); err != nil {
		return nil, err
	}
	n := 0
	for _, d := range cannedDeliveries() {
		named := slices.Contains(req.GetDeliveryIds(), d.GetDeliveryId())
		if named && d.GetState() != playsv1.DeliveryState_DELIVERY_STATE_DEAD {
			return nil, apierr.Status(nil, "Redeliver", apierr.FailedPrecondition("delivery %q is %s, not dead", d.GetDeliveryId(), enumName(d.GetState(), "DELIVERY_STATE_")))
		}
		if named || (len(req.GetDeliveryIds()) == 0 && d.GetDestinationId() == req.GetDestinationId() && d.GetState() == playsv1.DeliveryState_DELIVERY_STATE_DEAD) {
			n++
		}
	}
	return &playsv1.RedeliverResponse{Queued: int32(n)}, nil
}

func (f fakePlays) ListDestinations(ctx context.Context, _ *playsv1.ListDestinationsRequest) (*playsv1.ListDestinationsResponse, error) {
	if err := f.record(ctx, "ListDestinations"); err != nil {
		return nil, err
	}
	return &playsv1.ListDestinationsResponse{Destinations: []*playsv1.DestinationStatus{
		{Destination: &playsv1.Destination{DestinationId: "crm-webhook", Type: "webhook", Url: "https://hooks.example.com/cairn", Signed: true, Concurrency: 8},
			Pending: 3, InFlight: 1, Delivered: 120, FailedAttempts: 7, Dead: 1, Breaker: "closed", LastStatus: 200,
			LatencyP50: durationpb.New(85 * time.Millisecond), LatencyP99: durationpb.New(1400 * time.Millisecond)},
		{Destination: &playsv1.Destination{DestinationId: "cs-slack", Type: "slack", Url: "https://hooks.slack.com/services/T000/B000/XXXX"},
			Delivered: 40, FailedAttempts: 12, Breaker: "open", LastStatus: 503, LastError: "HTTP 503: Service Unavailable",
			LatencyP50: durationpb.New(120 * time.Millisecond), LatencyP99: durationpb.New(2500 * time.Millisecond)},
		{Destination: &playsv1.Destination{DestinationId: "new-hook", Type: "webhook", Url: "https://hooks.example.com/new", Signed: true}, Breaker: "closed"},
	}}, nil
}

func (f fakePlays) ListFirings(ctx context.Context, req *playsv1.ListFiringsRequest) (*playsv1.ListFiringsResponse, error) {
	if err := f.record(ctx, "ListFirings"); err != nil {
		return nil, err
	}
	all := []*playsv1.Firing{
		{FiringId: "f_31", PlayId: "pql-follow-up", PlaysVersion: 3, AccountId: "acme", Trigger: "assignment.created", Record: "pql handoff as-1 to alice",
			At: timestamppb.New(t0), TaskIds: []string{"t_12"}, DeliveryIds: []string{"msg_1a2b3c4d_7", "msg_1a2b3c4d_8"}},
		{FiringId: "f_30", PlayId: "pql-follow-up", PlaysVersion: 3, AccountId: "acme", Trigger: "assignment.created", Record: "pql handoff as-0 to alice",
			At: timestamppb.New(t0.Add(-time.Hour)), Held: "cooldown until 2026-10-02 08:00"},
		{FiringId: "f_29", PlayId: "renewal", PlaysVersion: 2, AccountId: "globex", Trigger: "signal.opened",
			Record: "health signal renewal_window_90 opened: contract ends in 88 days", At: timestamppb.New(t0.Add(-2 * time.Hour)), TaskIds: []string{"t_14", "t_15"}},
	}
	var fs []*playsv1.Firing
	for _, fr := range all {
		if (req.GetAccountId() == "" || fr.GetAccountId() == req.GetAccountId()) && (req.GetPlayId() == "" || fr.GetPlayId() == req.GetPlayId()) {
			fs = append(fs, fr)
		}
	}
	items, page, err := pageOf(fs, req.GetPage().GetPageToken())
	return &playsv1.ListFiringsResponse{Firings: items, Page: page}, err
}

// TestPlaysCommands runs the plays commands against the fake service and
// compares what they print with testdata/golden (-update rewrites them).
// The cases run in order: the second apply finds the first one's version.
func TestPlaysCommands(t *testing.T) {
	f, conn := suite(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"apply_plays", []string{"apply", "-f", "testdata/plays.yaml"}, 0},
		{"apply_plays_unchanged", []string{"apply", "-f", "testdata/plays.yaml"}, 0},
		{"apply_plays_dry_run_json", []string{"apply", "-f", "testdata/plays.yaml", "--dry-run", "-o", "json"}, 0},
		{"apply_plays_invalid", []string{"apply", "-f", "testdata/plays_invalid.yaml"}, 1},
		{"apply_plays_invalid_json", []string{"apply", "-f", "testdata/plays_invalid.yaml", "-o", "json"}, 1},
		{"apply_dry_run_journey", []string{"apply", "-f", "testdata/journey.yaml", "--dry-run"}, 2},
		{"apply_dry_run_activate", []string{"apply", "-f", "testdata/plays.yaml", "--dry-run", "--activate"}, 2},
		{"plays", []string{"plays"}, 0},
		{"plays_yaml", []string{"plays", "--yaml"}, 0},
		{"plays_json", []string{"plays", "-o", "json"}, 0},
		{"plays_none", []string{"plays", "--workspace", "empty"}, 1},
		{"plays_yaml_json", []string{"plays", "--yaml", "-o", "json"}, 2},
		{"tasks", []string{"tasks"}, 0},
		{"tasks_all", []string{"tasks", "--all"}, 0},
		{"tasks_page_2_csv", []string{"tasks", "--page-token", "p2", "-o", "csv"}, 0},
		{"tasks_first_page_csv", []string{"tasks", "-o", "csv"}, 0},
		{"tasks_open_json", []string{"tasks", "--state", "open", "--all", "-o", "json"}, 0},
		{"tasks_owner", []string{"tasks", "--owner", "carol", "--state", "SCHEDULED"}, 0},
		{"tasks_bad_state", []string{"tasks", "--state", "snoozed"}, 2},
		{"tasks_bad_page_size", []string{"tasks", "--page-size", "5000"}, 2},
		{"tasks_bad_subcommand", []string{"tasks", "finish", "t_12"}, 2},
		{"tasks_done", []string{"tasks", "done", "t_12", "--note", "called, demo booked"}, 0},
		{"tasks_skip_json", []string{"tasks", "skip", "t_20", "-o", "json"}, 0},
		{"tasks_reopen", []string{"tasks", "reopen", "t_9"}, 0},
		{"tasks_done_already", []string{"tasks", "done", "t_9"}, 1},
		{"tasks_done_unknown", []string{"tasks", "done", "t_404"}, 1},
		{"tasks_done_no_id", []string{"tasks", "done"}, 2},
		{"deliveries", []string{"deliveries", "--all"}, 0},
		{"deliveries_dead_csv", []string{"deliveries", "--state", "dead", "-o", "csv"}, 0},
		{"deliveries_destination_json", []string{"deliveries", "--destination", "cs-slack", "-o", "json"}, 0},
		{"deliveries_bad_state", []string{"deliveries", "--state", "failed"}, 2},
		{"deliveries_redeliver", []string{"deliveries", "redeliver", "msg_1a2b3c4d_9"}, 0},
		{"deliveries_redeliver_destination", []string{"deliveries", "redeliver", "--destination", "crm-webhook"}, 0},
		{"deliveries_redeliver_destination_json", []string{"deliveries", "redeliver", "--destination", "crm-webhook", "-o", "json"}, 0},
		{"deliveries_redeliver_pending", []string{"deliveries", "redeliver", "msg_1a2b3c4d_8"}, 1},
		{"deliveries_redeliver_nothing", []string{"deliveries", "redeliver"}, 2},
		{"deliveries_redeliver_both", []string{"deliveries", "redeliver", "msg_1a2b3c4d_9", "--destination", "crm-webhook"}, 2},
		{"destinations", []string{"destinations"}, 0},
		{"destinations_csv", []string{"destinations", "-o", "csv"}, 0},
		{"destinations_json", []string{"destinations", "-o", "json"}, 0},
		{"firings", []string{"firings"}, 0},
		{"firings_account_csv", []string{"firings", "--account", "globex", "-o", "csv"}, 0},
		{"firings_play_all_json", []string{"firings", "--play", "pql-follow-up", "--all", "-o", "json"}, 0},
		{"plays_replay", []string{"plays", "replay", "--play", "renewal", "--play", "pql-follow-up", "--since", "2026-11-01"}, 0},
		{"plays_replay_json", []string{"plays", "replay", "--play", "renewal", "-o", "json"}, 0},
		{"plays_replay_no_play", []string{"plays", "replay"}, 2},
		{"plays_replay_bad_since", []string{"plays", "replay", "--play", "renewal", "--since", "last week"}, 2},
		{"plays_replay_unknown", []string{"plays", "replay", "--play", "nope"}, 1},
		{"status_with_plays", []string{"status"}, 0},
		{"help_tasks_done", []string{"tasks", "done", "-h"}, 0},
		{"help_deliveries_redeliver", []string{"deliveries", "redeliver", "-h"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, f.key, append(tt.args, conn...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			got := out
			if errOut != "" {
				got += "--- stderr\n" + errOut
			}
			golden(t, tt.name, got)
		})
	}
}

// TestApplyPlaysSent checks what apply sends: the file as it is, or with
// its kind line emptied so that the service's lines are the file's; and
// that --dry-run asks for validation only.
func TestApplyPlaysSent(t *testing.T) {
	f, conn := suite(t)
	plain, err := os.ReadFile("testdata/plays.yaml")
	if err != nil {
		t.Fatal(err)
	}
	withKind, err := os.ReadFile("testdata/plays_invalid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantYAML string
		wantDry  bool
	}{
		{name: "plays key", args: []string{"-f", "testdata/plays.yaml"}, wantYAML: string(plain)},
		{name: "dry run", args: []string{"-f", "testdata/plays.yaml", "--dry-run"}, wantYAML: string(plain), wantDry: true},
		{name: "kind line emptied", args: []string{"-f", "testdata/plays_invalid.yaml"}, wantYAML: strings.Replace(string(withKind), "kind: plays\n", "\n", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, f.key, append(append([]string{"apply"}, tt.args...), conn...)...)
			f.mu.Lock()
			last := f.plays.sent[len(f.plays.sent)-1]
			f.mu.Unlock()
			if last.GetYaml() != tt.wantYAML || last.GetDryRun() != tt.wantDry {
				t.Errorf("sent dry_run %t, YAML:\n%s\nwant dry_run %t, YAML:\n%s", last.GetDryRun(), last.GetYaml(), tt.wantDry, tt.wantYAML)
			}
		})
	}
}

// TestTaskUpdates checks the state and note each subcommand sends.
func TestTaskUpdates(t *testing.T) {
	f, conn := suite(t)
	tests := []struct {
		args      []string
		wantState playsv1.TaskState
		wantNote  string
	}{
		{[]string{"done", "t_12", "--note", "booked"}, playsv1.TaskState_TASK_STATE_DONE, "booked"},
		{[]string{"skip", "--note", "duplicate", "t_20"}, playsv1.TaskState_TASK_STATE_SKIPPED, "duplicate"},
		{[]string{"reopen", "t_9"}, playsv1.TaskState_TASK_STATE_OPEN, ""},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			if code, out, errOut := run(t, f.key, append(append([]string{"tasks"}, tt.args...), conn...)...); code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			f.mu.Lock()
			last := f.plays.updates[len(f.plays.updates)-1]
			f.mu.Unlock()
			if last.GetState() != tt.wantState || last.GetNote() != tt.wantNote {
				t.Errorf("sent state %v note %q, want %v %q", last.GetState(), last.GetNote(), tt.wantState, tt.wantNote)
			}
		})
	}
}

func TestDetectKindPlays(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		wantBody string
		wantErr  string
	}{
		{name: "plays key", in: "plays: []\n", want: KindPlays, wantBody: "plays: []\n"},
		{name: "destinations key", in: "destinations:\n  - id: a\n", want: KindPlays},
		{name: "playbooks key", in: "playbooks: []\n", want: KindPlays},
		{name: "all three", in: "destinations: []\nplays: []\nplaybooks: []\n", want: KindPlays},
		{name: "kind line emptied, lines kept", in: "# mine\nkind: plays\n\nplays: []\n", want: KindPlays, wantBody: "# mine\n\n\nplays: []\n"},
		{name: "kind with a comment", in: "kind: Plays  # the plays\nplays: []\n", want: KindPlays, wantBody: "\nplays: []\n"},
		{name: "kind last, no newline", in: "plays: []\nkind: plays", want: KindPlays, wantBody: "plays: []\n"},
		{name: "kind line CRLF", in: "kind: plays\r\nplays: []\r\n", want: KindPlays, wantBody: "\r\nplays: []\r\n"},
		{name: "flow mapping is re-encoded", in: "{kind: plays, plays: []}\n", want: KindPlays, wantBody: "{plays: []}\n"},
		{name: "kind value on two lines is re-encoded", in: "kind: >-\n  plays\nplays: []\n", want: KindPlays, wantBody: "plays: []\n"},
		{name: "unknown kind names plays", in: "kind: playbook\n", wantErr: `kind: "playbook" is not one of journey, health, routing, plays`},
		{name: "plays and routing keys", in: "plays: []\nrules: []\n", wantErr: "`kind: journey|health|routing|plays`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, body, err := DetectKind([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || kind != tt.want {
				t.Fatalf("DetectKind = %q, %v; want %q", kind, err, tt.want)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestDemoPlaysYAML(t *testing.T) {
	kind, body, err := DetectKind(demo.PlaysYAML)
	if err != nil || kind != KindPlays || string(body) != string(demo.PlaysYAML) {
		t.Fatalf("DetectKind(demo plays) = %q, %v (body changed: %t)", kind, err, string(body) != string(demo.PlaysYAML))
	}
}

// StartReplay answers a replay that is done at once (so the command does
// not poll), or InvalidArgument for a play named "nope".
func (f fakePlays) StartReplay(ctx context.Context, req *playsv1.StartReplayRequest) (*playsv1.StartReplayResponse, error) {
	if err := f.record(ctx, "StartReplay"); err != nil {
		return nil, err
	}
	for i, id := range req.GetPlayIds() {
		if id == "nope" {
			return nil, apierr.Status(nil, "StartReplay", apierr.Field(fmt.Sprintf("play_ids[%d]", i), "no play %q in the active plays file", id))
		}
	}
	return &playsv1.StartReplayResponse{Replay: &playsv1.Replay{
		Workspace: req.GetWorkspace(), ReplayId: "r_7", PlayIds: req.GetPlayIds(), Since: req.GetSince(),
		State: playsv1.ReplayState_REPLAY_STATE_DONE, RecordsRead: 1200, RecordsTotal: 1200, Fired: 14, AlreadyFired: 3,
	}}, nil
}

// GetStatus answers a small backlog on each service, for `cairn status`.
func (f fakeStages) GetStatus(ctx context.Context, req *stagesv1.GetStatusRequest) (*stagesv1.GetStatusResponse, error) {
	return &stagesv1.GetStatusResponse{Backlog: &commonv1.Backlog{Lag: 12}}, f.record(ctx, "GetStatus")
}

func (h fakeHealth) GetStatus(ctx context.Context, req *healthv1.GetStatusRequest) (*healthv1.GetStatusResponse, error) {
	return &healthv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, h.record(ctx, "GetStatus")
}

func (f fakeRouting) GetStatus(ctx context.Context, req *routingv1.GetStatusRequest) (*routingv1.GetStatusResponse, error) {
	return &routingv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, f.record(ctx, "GetStatus")
}

func (f fakePlays) GetStatus(ctx context.Context, req *playsv1.GetStatusRequest) (*playsv1.GetStatusResponse, error) {
	return &playsv1.GetStatusResponse{Backlog: &commonv1.Backlog{Lag: 3}}, f.record(ctx, "GetStatus")
}
