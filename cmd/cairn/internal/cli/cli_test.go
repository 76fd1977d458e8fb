package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	routingconfig "github.com/cairn-dev/cairn/services/routing/config"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(fakeService(dir))
	}
	goleak.VerifyTestMain(m)
}

// fakes implements the four services with canned answers and records what
// the CLI sent. Each checks the bearer token, when key is set, so that key
// resolution is tested.
type fakes struct {
	key string

	mu        sync.Mutex
	seen      map[string]bool
	calls     []string
	yaml      []string
	owners    []string
	pools     []string
	listReqs  []*routingv1.ListAssignmentsRequest
	healthErr error
	// plays is fakePlays' state (plays_test.go).
	plays playsState
}

func (f *fakes) record(ctx context.Context, call string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); f.key != "" && (len(got) != 1 || got[0] != "Bearer "+f.key) {
		return status.Error(codes.Unauthenticated, "bad key")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return nil
}

var t0 = time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)

func (f fakeIngestion) IngestStream(s grpc.BidiStreamingServer[ingestionv1.IngestStreamRequest, ingestionv1.IngestStreamResponse]) error {
	if err := f.record(s.Context(), "IngestStream"); err != nil {
		return err
	}
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&ingestionv1.IngestStreamResponse{Sequence: req.GetSequence(), Result: f.answer(req.GetBatch())}); err != nil {
			return err
		}
	}
}

// Ingest is the unary path, which ordered uploads (the demo load) use.
func (f fakeIngestion) Ingest(ctx context.Context, req *ingestionv1.IngestRequest) (*ingestionv1.IngestResponse, error) {
	if err := f.record(ctx, "Ingest"); err != nil {
		return nil, err
	}
	return f.answer(req), nil
}

// answer accepts every event of a batch but those named "bad", and reports
// message ids seen before as duplicates.
func (f fakeIngestion) answer(batch *ingestionv1.IngestRequest) *ingestionv1.IngestResponse {
	resp := &ingestionv1.IngestResponse{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ev := range batch.GetEvents() {
		r := &ingestionv1.EventResult{Index: int32(i), MessageId: ev.GetMessageId()}
		switch {
		case ev.GetEvent() == "bad":
			r.Status, r.Field, r.Reason = ingestionv1.EventStatus_EVENT_STATUS_REJECTED, fmt.Sprintf("events[%d].event", i), `"bad" is not allowed`
			resp.Rejected++
		case f.seen[ev.GetMessageId()]:
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_DUPLICATE
			resp.Duplicates++
		default:
			f.seen[ev.GetMessageId()] = true
			r.Status = ingestionv1.EventStatus_EVENT_STATUS_ACCEPTED
			resp.Accepted++
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

func (f fakeIngestion) GetLogInfo(ctx context.Context, _ *ingestionv1.GetLogInfoRequest) (*ingestionv1.GetLogInfoResponse, error) {
	if err := f.record(ctx, "GetLogInfo"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &ingestionv1.GetLogInfoResponse{Partitions: []*commonv1.PartitionInfo{{Partition: 0, LastOffset: uint64(len(f.seen))}}}, nil
}

func (f fakeStages) GetAccountJourney(ctx context.Context, req *stagesv1.GetAccountJourneyRequest) (*stagesv1.GetAccountJourneyResponse, error) {
	if err := f.record(ctx, "GetAccountJourney"); err != nil {
		return nil, err
	}
	if req.GetAccountId() != "acme" {
		return nil, status.Errorf(codes.NotFound, "account %q not found", req.GetAccountId())
	}
	return &stagesv1.GetAccountJourneyResponse{Journey: &stagesv1.AccountJourney{
		AccountId: "acme", JourneyId: "b2b", Version: 2, Stage: "onboarding", EnteredAt: timestamppb.New(t0),
		TimeInStage: durationpb.New(5 * 24 * time.Hour), Traits: map[string]string{"segment": "smb", "plan": "team"},
		History: []*stagesv1.Transition{
			{ToStage: "trial", At: timestamppb.New(t0.AddDate(0, 0, -20)), Cause: "event"},
			{FromStage: "trial", ToStage: "onboarding", At: timestamppb.New(t0), Cause: "event", Criteria: []*stagesv1.CriterionResult{{Name: "closed_won", Met: true}, {Name: "closed_won", Met: true}, {Name: "nope"}}},
		},
		ExitCriteria: []*stagesv1.CriterionResult{{Name: "activated", Expr: `count("report_created", "14d") >= 3`}, {Name: "integrated", Met: true, Expr: "integrations() >= 1"}},
	}}, nil
}

func (f fakeStages) GetFunnel(ctx context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	if err := f.record(ctx, "GetFunnel "+req.GetSegment()); err != nil {
		return nil, err
	}
	return &stagesv1.GetFunnelResponse{Accounts: 300, Stages: []*stagesv1.FunnelStage{
		{Stage: "trial", Name: "Trial", Current: 40, Entered: 120, Converted: 60, Dropped: 20, ConversionRate: 0.5, MedianTimeInStage: durationpb.New(9 * 24 * time.Hour)},
		{Stage: "onboarding", Name: "Onboarding", OwnerTeam: "CS", Current: 25, Entered: 60, Converted: 30, ConversionRate: 0.5},
	}}, nil
}

func (f fakeStages) ListSignals(ctx context.Context, req *stagesv1.ListSignalsRequest) (*stagesv1.ListSignalsResponse, error) {
	if err := f.record(ctx, "stages.ListSignals"); err != nil {
		return nil, err
	}
	return &stagesv1.ListSignalsResponse{Signals: []*commonv1.Signal{
		{AccountId: "acme", Kind: commonv1.SignalKind_SIGNAL_KIND_DROPOFF, Reason: "no_activation_14d", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(t0)},
	}}, nil
}

// One type per service, sharing the recorder: the services' method sets overlap.
type (
	fakeIngestion struct {
		ingestionv1.UnimplementedIngestionServiceServer
		*fakes
	}
	fakeStages struct {
		stagesv1.UnimplementedStagesServiceServer
		*fakes
	}
	fakeHealth struct {
		healthv1.UnimplementedHealthServiceServer
		*fakes
	}
	fakeRouting struct {
		routingv1.UnimplementedRoutingServiceServer
		*fakes
	}
)

func (h fakeHealth) ListSignals(ctx context.Context, req *healthv1.ListSignalsRequest) (*healthv1.ListSignalsResponse, error) {
	if err := h.record(ctx, "health.ListSignals"); err != nil {
		return nil, err
	}
	if h.healthErr != nil {
		return nil, h.healthErr
	}
	return &healthv1.ListSignalsResponse{Signals: []*commonv1.Signal{
		{AccountId: "globex", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, Reason: "usage_drop_30d", State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(t0.Add(time.Hour)), Message: "active users down 40%"},
	}, Page: &commonv1.PageResponse{NextPageToken: "h2"}}, nil
}

func (h fakeHealth) GetAccountHealth(ctx context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	if err := h.record(ctx, "GetAccountHealth"); err != nil {
		return nil, err
	}
	at := func(day int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 1, day, 0, 0, 0, 0, time.UTC))
	}
	switch req.GetAccountId() {
	case "trialco": // a trial: not scored
		return &healthv1.GetAccountHealthResponse{Health: &healthv1.AccountHealth{AccountId: "trialco",
			Lifecycle: &commonv1.Lifecycle{Status: commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, Since: at(5), History: []*commonv1.StatusChange{
				{Status: commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, At: at(1)}, {Status: commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, At: at(5)}}}}}, nil
	case "goneco": // churned: the last score is kept for history
		return &healthv1.GetAccountHealthResponse{Health: &healthv1.AccountHealth{AccountId: "goneco", Score: 31, Band: healthv1.Band_BAND_AT_RISK, AsOf: at(20),
			Lifecycle: &commonv1.Lifecycle{Status: commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, Since: at(20)}}}, nil
	}
	return &healthv1.GetAccountHealthResponse{Health: &healthv1.AccountHealth{
		AccountId: req.GetAccountId(), Score: 72.5, Band: healthv1.Band_BAND_NEUTRAL, Trend_30D: -4, Direction: "down", ModelId: "default", ModelVersion: 1,
		Components: []*healthv1.ComponentScore{{Name: "usage_breadth", RawValue: 0.4, Points: 60, Weight: 50, Contribution: 30, Explanation: "4 of 10 seats active"}},
	}}, nil
}

func (h fakeHealth) Backtest(ctx context.Context, req *healthv1.BacktestRequest) (*healthv1.BacktestResponse, error) {
	if err := h.record(ctx, fmt.Sprintf("Backtest %d", req.GetHorizonDays())); err != nil {
		return nil, err
	}
	return &healthv1.BacktestResponse{Renewed: 80, Churned: 20, Auc: 0.81, HorizonDays: req.GetHorizonDays(), Bands: []*healthv1.BandOutcome{
		{Band: healthv1.Band_BAND_AT_RISK, Accounts: 25, Churned: 14, ChurnRate: 0.56},
	}}, nil
}

func (h fakeHealth) ApplyModel(ctx context.Context, req *healthv1.ApplyModelRequest) (*healthv1.ApplyModelResponse, error) {
	if err := h.record(ctx, "ApplyModel"); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.yaml = append(h.yaml, req.GetYaml())
	h.mu.Unlock()
	return &healthv1.ApplyModelResponse{Model: &healthv1.Model{Id: "default", Version: 3, Components: make([]*healthv1.Component, 1)}, Active: req.GetActivate()}, nil
}

func (f fakeStages) ApplyJourney(ctx context.Context, req *stagesv1.ApplyJourneyRequest) (*stagesv1.ApplyJourneyResponse, error) {
	if err := f.record(ctx, "ApplyJourney"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.yaml = append(f.yaml, req.GetYaml())
	f.mu.Unlock()
	return &stagesv1.ApplyJourneyResponse{Definition: &stagesv1.JourneyDefinition{Id: "b2b", Version: 4, Stages: make([]*stagesv1.Stage, 1)}, Active: true}, nil
}

func (f fakeRouting) UpsertOwner(ctx context.Context, req *routingv1.UpsertOwnerRequest) (*routingv1.UpsertOwnerResponse, error) {
	if err := f.record(ctx, "UpsertOwner"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.owners = append(f.owners, req.GetOwner().GetOwnerId())
	f.mu.Unlock()
	return &routingv1.UpsertOwnerResponse{Owner: req.GetOwner()}, nil
}

func (f fakeRouting) UpsertPool(ctx context.Context, req *routingv1.UpsertPoolRequest) (*routingv1.UpsertPoolResponse, error) {
	if err := f.record(ctx, "UpsertPool"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.pools = append(f.pools, req.GetPool().GetPoolId())
	f.mu.Unlock()
	return &routingv1.UpsertPoolResponse{Pool: req.GetPool()}, nil
}

func (f fakeRouting) ApplyConfig(ctx context.Context, req *routingv1.ApplyConfigRequest) (*routingv1.ApplyConfigResponse, error) {
	if err := f.record(ctx, "ApplyConfig"); err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	cfg.Version = 1
	return &routingv1.ApplyConfigResponse{Config: cfg}, nil
}

func (f fakeRouting) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	if err := f.record(ctx, "ListAssignments"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.listReqs = append(f.listReqs, req)
	f.mu.Unlock()
	// Two pages: the CLI fetches both.
	if req.GetPage().GetPageToken() == "next-1" {
		return &routingv1.ListAssignmentsResponse{Assignments: []*routingv1.Assignment{{
			AssignmentId: "as-2", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, AccountId: "globex", OwnerId: "bob", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, CreatedAt: timestamppb.New(t0),
		}}}, nil
	}
	return &routingv1.ListAssignmentsResponse{Assignments: []*routingv1.Assignment{{
		AssignmentId: "as-1", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, AccountId: "acme", OwnerId: "alice", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
		Decision: &routingv1.Decision{Rule: "known-account"}, CreatedAt: timestamppb.New(t0),
		Sla: &routingv1.SlaState{Allowed: durationpb.New(4 * time.Hour), Used: durationpb.New(time.Hour), DueAt: timestamppb.New(t0.Add(4 * time.Hour))},
	}}, Page: &commonv1.PageResponse{NextPageToken: "next-1"}}, nil
}

// suite starts the fakes on one loopback port and returns flags pointing the
// CLI at it.
func suite(t *testing.T) (*fakes, []string) {
	t.Helper()
	f := &fakes{key: "cairn_admin_test", seen: map[string]bool{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	ingestionv1.RegisterIngestionServiceServer(s, fakeIngestion{fakes: f})
	stagesv1.RegisterStagesServiceServer(s, fakeStages{fakes: f})
	healthv1.RegisterHealthServiceServer(s, fakeHealth{fakes: f})
	routingv1.RegisterRoutingServiceServer(s, fakeRouting{fakes: f})
	playsv1.RegisterPlaysServiceServer(s, fakePlays{fakes: f})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	addr := lis.Addr().String()
	return f, []string{"--addr-ingestion", addr, "--addr-stages", addr, "--addr-health", addr, "--addr-routing", addr, "--addr-plays", addr, "--data", t.TempDir()}
}

// run runs the CLI with the key in CAIRN_KEY and returns exit code, stdout, stderr.
func run(t *testing.T, key string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "CAIRN_KEY" {
			return key
		}
		return ""
	}}
	code := Main(context.Background(), args, env)
	return code, out.String(), errb.String()
}

func TestQueryCommands(t *testing.T) {
	f, conn := suite(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
		wantErr  string
		wantCall string
	}{
		{name: "journey table", args: []string{"journey", "acme"}, want: []string{"Stage:          onboarding (since 2026-10-01 09:00, 5d)", "[ ]  activated", "[x]  integrated", "trial  onboarding  event  closed_won\n", "plan=team segment=smb"}, wantCall: "GetAccountJourney"},
		{name: "journey flags after the account, json", args: []string{"journey", "acme", "-o", "json"}, want: []string{`"stage": "onboarding"`, `"journeyId": "b2b"`}},
		{name: "journey not found", args: []string{"journey", "nobody"}, wantCode: 1, wantErr: `cairn journey: get journey of "nobody": NotFound: account "nobody" not found`},
		{name: "journey without account", args: []string{"journey"}, wantCode: 2, wantErr: "want 1 argument(s), got 0"},
		{name: "funnel", args: []string{"funnel", "--segment", "smb"}, want: []string{"Accounts: 300", "trial       Trial", "50.0", "9d"}, wantCall: "GetFunnel smb"},
		{name: "health", args: []string{"health", "acme"}, want: []string{"Score:     72.5 (neutral)", "30d -4.0, down", "usage_breadth", "4 of 10 seats active"}},
		{name: "health of a trial", args: []string{"health", "trialco"}, want: []string{"Status:    trial since 2026-01-05 00:00 (prospect 2026-01-01 00:00, trial 2026-01-05 00:00)", "Score:     not scored: customer health is for paying customers"}},
		{name: "health of a churned account", args: []string{"health", "goneco"}, want: []string{"Status:    churned since 2026-01-20 00:00", "Score:     not live: the last score, 31.0 (at_risk) as of 2026-01-20 00:00, is kept for history"}},
		{name: "signals from both services, newest first", args: []string{"signals"}, want: []string{"risk     usage_drop_30d     globex", "dropoff  no_activation_14d  acme", "more: --from health --page-token h2"}},
		{name: "signals of a stages kind asks only stages", args: []string{"signals", "--kind", "dropoff", "-o", "json"}, want: []string{`"stages"`, `"no_activation_14d"`}},
		{name: "signals bad kind", args: []string{"signals", "--kind", "sad"}, wantCode: 2, wantErr: `unknown --kind "sad"`},
		{name: "assignments, every page", args: []string{"assignments", "--state", "open", "--type", "mql"}, want: []string{"as-1", "mql", "alice", "known-account", "running 1h/4h", "as-2"}},
		{name: "assignments limit", args: []string{"assignments", "--limit", "1", "-o", "csv"}, want: []string{"ID,TYPE,ACCOUNT,OWNER,STATE,RULE,CREATED,SLA DUE,SLA\nas-1,mql,acme,alice,open,known-account,2026-10-01 09:00,2026-10-01 13:00,running 1h/4h\n"}},
		{name: "assignments bad state", args: []string{"assignments", "--state", "snoozed"}, wantCode: 2, wantErr: `unknown --state "snoozed"`},
		{name: "backtest", args: []string{"backtest", "--horizon", "60"}, want: []string{"Horizon 60 days: 80 renewed, 20 churned, AUC 0.810", "at_risk", "56.0%"}, wantCall: "Backtest 60"},
		{name: "funnel csv", args: []string{"funnel", "-o", "csv"}, want: []string{"group_by,key,stage,name,current,entered,converted,converted_late,dropped,churned,flagged,conversion_rate,", ",,trial,Trial,40,120,60,0,20,0,0,0.5000,777600,,,\n"}},
		{name: "funnel bad --by", args: []string{"funnel", "--by", "region"}, wantCode: 2, wantErr: `--by must be segment, cohort or plan, not "region"`},
		{name: "bad output format", args: []string{"funnel", "-o", "yaml"}, wantCode: 2, wantErr: "-o must be table, json or csv"},
		{name: "csv where there is no list", args: []string{"journey", "acme", "-o", "csv"}, wantCode: 2, wantErr: "-o must be table or json, not \"csv\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, f.key, append(tt.args, conn...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			if tt.wantCall != "" {
				f.mu.Lock()
				last := f.calls[len(f.calls)-1]
				f.mu.Unlock()
				if last != tt.wantCall {
					t.Errorf("last call %q, want %q", last, tt.wantCall)
				}
			}
		})
	}
	f.mu.Lock()
	req := f.listReqs[0]
	f.mu.Unlock()
	if req.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || req.GetType() != routingv1.HandoffType_HANDOFF_TYPE_MQL {
		t.Errorf("assignments sent state %v type %v", req.GetState(), req.GetType())
	}
}

func TestSignalsOneServiceDown(t *testing.T) {
	f, conn := suite(t)
	f.healthErr = status.Error(codes.Unavailable, "health is starting")
	code, out, errOut := run(t, f.key, append([]string{"signals"}, conn...)...)
	if code != 0 || !strings.Contains(out, "no_activation_14d") || !strings.Contains(errOut, "warning: health: Unavailable: health is starting") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestKeyResolution(t *testing.T) {
	f, conn := suite(t)
	data := conn[len(conn)-1]
	tests := []struct {
		name     string
		envKey   string
		runJSON  string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no key anywhere", wantCode: 1, wantErr: "no API key"},
		{name: "CAIRN_KEY", envKey: f.key},
		{name: "--key wins over CAIRN_KEY", envKey: "wrong", args: []string{"--key", f.key}},
		{name: "wrong key is refused by the server", envKey: "wrong", wantCode: 1, wantErr: "Unauthenticated: bad key"},
		{name: "admin key from run.json", runJSON: `{"admin_key":"` + f.key + `"}`},
		{name: "corrupt run.json", runJSON: `{`, wantCode: 1, wantErr: "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(data, "run.json"))
			if tt.runJSON != "" {
				if err := os.WriteFile(filepath.Join(data, "run.json"), []byte(tt.runJSON), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := run(t, tt.envKey, append(append([]string{"funnel"}, tt.args...), conn...)...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)\n%s", code, tt.wantCode, errOut, tt.wantErr, out)
			}
		})
	}
}

func TestRunInfoAddresses(t *testing.T) {
	f, conn := suite(t)
	data := t.TempDir()
	ri := RunInfo{AdminKey: f.key, GRPC: map[string]string{"stages": conn[3]}}
	b, _ := json.Marshal(ri)
	if err := os.WriteFile(filepath.Join(data, "run.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "funnel", "--data", data)
	if code != 0 || !strings.Contains(out, "Accounts: 300") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestIngestCommand(t *testing.T) {
	f, conn := suite(t)
	code, out, errOut := run(t, f.key, append([]string{"ingest", "testdata/events.ndjson", "--batch", "2"}, conn...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, w := range []string{
		"accepted 2, duplicate 1, rejected 3",
		"5     timestamp",
		"6",
		"4     event      \"bad\" is not allowed",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	code, out, _ = run(t, f.key, append([]string{"ingest", "-o", "json", "testdata/events.ndjson"}, conn...)...)
	var got struct{ Accepted, Duplicates, Rejected int }
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("exit %d, json %v:\n%s", code, err, out)
	}
	if got.Accepted != 0 || got.Duplicates != 3 || got.Rejected != 3 {
		t.Errorf("second upload = %+v, want all accepted events reported as duplicates", got)
	}
	code, _, errOut = run(t, f.key, append([]string{"ingest", "testdata/missing.ndjson"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "open events file") {
		t.Errorf("missing file: exit %d, %s", code, errOut)
	}
}

func TestApplyCommand(t *testing.T) {
	f, conn := suite(t)
	code, out, errOut := run(t, f.key, append([]string{"apply", "-f", "testdata/journey.yaml", "-f", "testdata/health.yaml", "-f", "testdata/routing.yaml"}, conn...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, w := range []string{
		"journey b2b version 4 applied (1 stages, active: true)",
		"health model default version 3 applied (1 components, active: false)",
		"routing: 6 owners and 4 pools upserted; config version 1 applied (4 rules, 2 PQL rules, 2 SLA policies)",
		"next: existing accounts are not placed by a new version: run cairn apply -f testdata/journey.yaml --activate",
		"next: version 3 does not score anyone yet: run cairn apply -f testdata/health.yaml --activate",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.yaml) != 2 || strings.Contains(f.yaml[0], "kind:") || !strings.Contains(f.yaml[0], "count(\"report_created\", \"14d\") >= 3") {
		t.Errorf("journey YAML sent = %q, want the file without its kind field", f.yaml)
	}
	if strings.Join(f.owners, ",") != "alice,bob,erin,carol,ivan,maria" || strings.Join(f.pools, ",") != "sdr-pool,ae-pool,cs-pool,impl-pool" {
		t.Errorf("owners %v pools %v", f.owners, f.pools)
	}
	calls := strings.Join(f.calls, ",")
	if i, j := strings.LastIndex(calls, "UpsertPool"), strings.Index(calls, "ApplyConfig"); i > j {
		t.Errorf("config applied before its pools: %s", calls)
	}
}

func TestApplyErrors(t *testing.T) {
	f, conn := suite(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: routing\nrules:\n  - name: x\n    action: teleport\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantErr string
	}{
		{name: "ambiguous", file: "testdata/ambiguous.yaml", wantErr: "add a top-level `kind: journey|health|routing|plays`"},
		{name: "invalid routing", file: bad, wantErr: "routing file is invalid (1 problem):\n  line 4: rules[0].action: must be"},
		{name: "missing", file: "testdata/nope.yaml", wantErr: "open definition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, f.key, append([]string{"apply", "-f", tt.file}, conn...)...)
			if code != 1 || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tt.wantErr)
			}
		})
	}
}

func TestDetectKind(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		wantBody string
		wantErr  string
	}{
		{name: "kind journey", in: "kind: journey\nid: b2b\n", want: KindJourney, wantBody: "id: b2b\n"},
		{name: "kind alias, key order kept", in: "id: m\nkind: HealthModel\ncomponents: []\n", want: KindHealth, wantBody: "id: m\ncomponents: []\n"},
		{name: "stages key", in: "id: b2b\nstages:\n  - id: trial\n", want: KindJourney},
		{name: "components key", in: "id: d\ncomponents: []\n", want: KindHealth},
		{name: "routing keys", in: "fallback_pool: p\nowners: []\n", want: KindRouting},
		{name: "unknown kind", in: "kind: pipeline\n", wantErr: `kind: "pipeline" is not one of`},
		{name: "nothing to go by", in: "id: x\n", wantErr: "cannot tell"},
		{name: "mixed keys", in: "stages: []\ncomponents: []\n", wantErr: "cannot tell"},
		{name: "a list", in: "- a\n", wantErr: "must be a mapping"},
		{name: "empty", in: "", wantErr: "must be a mapping"},
		{name: "not yaml", in: "a: [\n", wantErr: "parse YAML"},
		{name: "two documents", in: "kind: journey\nid: a\n---\nkind: journey\nid: b\n",
			wantErr: "parse YAML: line 3: a second YAML document: multi-document files are not supported; apply one definition per file"},
		{name: "health weight .nan", in: "kind: health\ncomponents:\n  - name: usage\n    weight: .nan\n",
			wantErr: "parse YAML: line 4: components[0].weight: .nan is not a finite number"},
		{name: "routing capacity .inf", in: "owners:\n  - id: a\n    capacity: .inf\n", wantErr: "line 3: owners[0].capacity: .inf is not a finite number"},
		{name: "trailing document marker", in: "kind: journey\nid: b2b\n---\n", want: KindJourney, wantBody: "id: b2b\n"},
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

func FuzzDetectKind(f *testing.F) {
	for _, s := range []string{"kind: journey\nid: b2b\n", "stages: []\n", "kind: [1]\n", "- x\n", "{", "kind: routing\nowners:\n  - id: a\n", "# c\nkind: plays\n\nplays: []\n"} {
		f.Add([]byte(s))
	}
	f.Add([]byte("kind: health\ncomponents: [{weight: .nan}]\n---\nkind: journey\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, body, err := DetectKind(data)
		if err == nil && (kind == "" || body == nil) {
			t.Fatalf("no error but kind %q body %v", kind, body)
		}
		if err == nil {
			// What is sent is one document, with finite numbers only.
			if yerr := yamldoc.Check(body); yerr != nil {
				t.Fatalf("DetectKind passed on a body yamldoc refuses: %v\n%s", yerr, body)
			}
		}
	})
}

func FuzzReadNDJSON(f *testing.F) {
	seed, _ := os.ReadFile("testdata/events.ndjson")
	f.Add(seed)
	f.Add([]byte("{}\n\n{\"type\":\"track\"}"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, bad, err := ReadNDJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, it := range items {
			if it.Event == nil || it.Line <= 0 {
				t.Fatalf("item %+v", it)
			}
		}
		for _, b := range bad {
			if b.Line <= 0 || b.Reason == "" {
				t.Fatalf("rejection %+v", b)
			}
		}
	})
}

func TestDemoRoutingYAML(t *testing.T) {
	kind, body, err := DetectKind(demo.RoutingYAML)
	if err != nil || kind != KindRouting {
		t.Fatalf("DetectKind = %q, %v", kind, err)
	}
	cfg, owners, pools, err := routingconfig.Parse(body)
	if err != nil {
		t.Fatalf("demo routing.yaml does not parse: %v", err)
	}
	if len(owners) < 5 || len(pools) < 3 || len(cfg.GetRules()) < 3 {
		t.Errorf("demo routing has %d owners, %d pools, %d rules", len(owners), len(pools), len(cfg.GetRules()))
	}
}

func TestKeysCreate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantRole auth.Role
		wantWS   string
		wantErr  string
	}{
		{name: "write key", args: []string{"--role", "write", "--workspace", "acme"}, wantRole: auth.RoleWrite, wantWS: "acme"},
		{name: "cluster-wide service key", args: []string{"--role", "service", "--cluster-wide"}, wantRole: auth.RoleService},
		{name: "service key bound to a workspace", args: []string{"--role", "service", "--workspace", "acme"}, wantRole: auth.RoleService, wantWS: "acme"},
		{name: "service key needs a workspace or --cluster-wide", args: []string{"--role", "service"}, wantCode: 2, wantErr: "--cluster-wide makes one for every workspace"},
		{name: "cluster-wide and a workspace", args: []string{"--role", "service", "--cluster-wide", "--workspace", "acme"}, wantCode: 2, wantErr: "exclude each other"},
		{name: "cluster-wide is for service keys", args: []string{"--role", "admin", "--cluster-wide"}, wantCode: 2, wantErr: "only for service keys"},
		{name: "read key, json", args: []string{"--role", "read", "--workspace", "acme", "-o", "json"}, wantRole: auth.RoleRead, wantWS: "acme"},
		{name: "missing workspace", args: []string{"--role", "admin"}, wantCode: 2, wantErr: "--workspace is required"},
		{name: "bad role", args: []string{"--role", "owner", "--workspace", "a"}, wantCode: 2, wantErr: "--role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append([]string{"keys", "create", "--data", dir}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, errOut)
			}
			if tt.wantCode != 0 {
				if !strings.Contains(errOut, tt.wantErr) {
					t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
				}
				return
			}
			token := strings.TrimSpace(out)
			var js struct{ Token string }
			if json.Unmarshal([]byte(out), &js) == nil {
				token = js.Token
			}
			kr, err := auth.LoadKeyring(filepath.Join(dir, "keys.json"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := kr.Authenticate(token)
			if err != nil || p.Role != tt.wantRole || p.Workspace != tt.wantWS {
				t.Errorf("Authenticate(new token) = %+v, %v; want %v in %q", p, err, tt.wantRole, tt.wantWS)
			}
			if wide := slices.Contains(tt.args, "--cluster-wide"); p.ClusterWide() != wide || strings.HasPrefix(p.KeyID, auth.ClusterWideIDPrefix) != wide {
				t.Errorf("key %+v: cluster-wide %v, want %v, named so", p, p.ClusterWide(), wide)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "no args", args: nil, wantOut: "Commands:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		{name: "command help", args: []string{"ingest", "-h"}, wantOut: "Usage: cairn ingest"},
		{name: "unknown flag", args: []string{"funnel", "--colour"}, wantCode: 2, wantErr: "flag provided but not defined: -colour"},
		{name: "keys without subcommand", args: []string{"keys"}, wantCode: 2, wantErr: "name a subcommand: create, list or revoke"},
		{name: "demo with a bad date", args: []string{"demo", "--now", "tomorrow"}, wantCode: 2, wantErr: "--now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
		})
	}
}

func TestDemoCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo.ndjson")
	code, _, errOut := run(t, "", "demo", "--out", out, "--demo-accounts", "5", "--now", "2026-11-01", "--seed", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items, bad, err := ReadNDJSON(f)
	if err != nil || len(bad) != 0 || len(items) == 0 {
		t.Fatalf("demo file decodes to %d events, %d bad, %v", len(items), len(bad), err)
	}
	if !strings.Contains(errOut, fmt.Sprintf("wrote %d events for 5 accounts", len(items))) {
		t.Errorf("stderr %q", errOut)
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		wantO   string
	}{
		{name: "flags first", args: []string{"-o", "json", "a"}, wantPos: []string{"a"}, wantO: "json"},
		{name: "flags last", args: []string{"a", "-o", "json"}, wantPos: []string{"a"}, wantO: "json"},
		{name: "double dash", args: []string{"--", "-o"}, wantPos: []string{"-o"}, wantO: "table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{Stdout: io.Discard, Stderr: io.Discard}
			fs := helpFlagSet(env, "x", "x")
			o := fs.String("o", "table", "")
			pos, err := parse(fs, tt.args)
			if err != nil || fmt.Sprint(pos) != fmt.Sprint(tt.wantPos) || *o != tt.wantO {
				t.Errorf("parse = %v, %v, -o %q", pos, err, *o)
			}
		})
	}
}
