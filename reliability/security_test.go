package reliability

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// call is one RPC made with the key under test.
type call struct {
	name string
	do   func(ctx context.Context, s *suite, token string) error
}

// TestSecurity checks on every service, over gRPC and REST through the
// gateway, that requests with no key, a wrong key, another workspace's key
// or too low a role are refused, and that the refusal echoes neither the
// key nor a workspace name.
func TestSecurity(t *testing.T) {
	s := newSuite(t)
	s.logLevel = "debug" // the most a process logs, for the clear-key check
	for _, name := range append(append([]string{}, services...), "gateway") {
		s.start(name)
	}
	const bogus = "cairn_bogus_0123456789abcdef0123456789abcdef"
	calls := map[string][]call{
		"read": {
			{"ingestion ListAccountEvents", func(ctx context.Context, s *suite, tok string) error {
				_, err := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", tok)).ListAccountEvents(ctx, &ingestionv1.ListAccountEventsRequest{Workspace: workspace, AccountId: "acct-000"})
				return err
			}},
			{"stages GetAccountJourney", func(ctx context.Context, s *suite, tok string) error {
				_, err := stagesv1.NewStagesServiceClient(s.conn("stages", tok)).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{Workspace: workspace, AccountId: "acct-000"})
				return err
			}},
			{"health GetAccountHealth", func(ctx context.Context, s *suite, tok string) error {
				_, err := healthv1.NewHealthServiceClient(s.conn("health", tok)).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{Workspace: workspace, AccountId: "acct-000"})
				return err
			}},
			{"routing ListAssignments", func(ctx context.Context, s *suite, tok string) error {
				_, err := routingv1.NewRoutingServiceClient(s.conn("routing", tok)).ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: workspace})
				return err
			}},
		},
		"write": {
			{"ingestion Ingest", func(ctx context.Context, s *suite, tok string) error {
				_, err := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", tok)).Ingest(ctx, &ingestionv1.IngestRequest{Workspace: workspace, Events: workload(1, 1, time.Now())[:1]})
				return err
			}},
		},
		"admin": {
			{"stages ApplyJourney", func(ctx context.Context, s *suite, tok string) error {
				_, err := stagesv1.NewStagesServiceClient(s.conn("stages", tok)).ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Workspace: workspace})
				return err
			}},
			{"health ApplyModel", func(ctx context.Context, s *suite, tok string) error {
				_, err := healthv1.NewHealthServiceClient(s.conn("health", tok)).ApplyModel(ctx, &healthv1.ApplyModelRequest{Workspace: workspace})
				return err
			}},
			{"routing ApplyConfig", func(ctx context.Context, s *suite, tok string) error {
				_, err := routingv1.NewRoutingServiceClient(s.conn("routing", tok)).ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Workspace: workspace, Yaml: routingYAML})
				return err
			}},
		},
		"service": {
			{"ingestion Subscribe", func(ctx context.Context, s *suite, tok string) error {
				st, err := ingestionv1.NewIngestionServiceClient(s.conn("ingestion", tok)).Subscribe(ctx, &ingestionv1.SubscribeRequest{})
				if err != nil {
					return err
				}
				_, err = st.Recv()
				return err
			}},
			{"stages Subscribe", func(ctx context.Context, s *suite, tok string) error {
				st, err := stagesv1.NewStagesServiceClient(s.conn("stages", tok)).Subscribe(ctx, &stagesv1.SubscribeRequest{})
				if err != nil {
					return err
				}
				_, err = st.Recv()
				return err
			}},
			{"health Subscribe", func(ctx context.Context, s *suite, tok string) error {
				st, err := healthv1.NewHealthServiceClient(s.conn("health", tok)).Subscribe(ctx, &healthv1.SubscribeRequest{})
				if err != nil {
					return err
				}
				_, err = st.Recv()
				return err
			}},
			{"routing Subscribe", func(ctx context.Context, s *suite, tok string) error {
				st, err := routingv1.NewRoutingServiceClient(s.conn("routing", tok)).Subscribe(ctx, &routingv1.SubscribeRequest{})
				if err != nil {
					return err
				}
				_, err = st.Recv()
				return err
			}},
		},
	}
	// tooLow is a key of the right workspace whose role is below the need.
	tooLow := map[string]string{"read": s.keys.write, "write": s.keys.read, "admin": s.keys.read, "service": s.keys.admin}
	secrets := []string{s.keys.service, s.keys.admin, s.keys.write, s.keys.read, s.keys.otherAdmin, bogus}

	for need, cs := range calls {
		for _, c := range cs {
			cases := []struct {
				name  string
				token string
				want  codes.Code
			}{
				{"no key", "", codes.Unauthenticated},
				{"wrong key", bogus, codes.Unauthenticated},
				{"role too low", tooLow[need], codes.PermissionDenied},
			}
			if need != "service" {
				cases = append(cases, struct {
					name  string
					token string
					want  codes.Code
				}{"other workspace", s.keys.otherAdmin, codes.PermissionDenied})
			}
			for _, tc := range cases {
				t.Run(c.name+"/"+tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					defer cancel()
					err := c.do(ctx, s, tc.token)
					if got := status.Code(err); got != tc.want {
						t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
					}
					checkNoLeak(t, status.Convert(err).Message(), secrets)
				})
			}
		}
	}

	// REST through the gateway: one read, one write and one admin route.
	rest := []struct {
		name, method, path, body, need string
	}{
		{"GET journey", http.MethodGet, "/v1/accounts/acct-000/journey?workspace=" + workspace, "", "read"},
		{"GET health", http.MethodGet, "/v1/accounts/acct-000/health?workspace=" + workspace, "", "read"},
		{"POST events", http.MethodPost, "/v1/events:batch", `{"workspace":"` + workspace + `","events":[{"type":"EVENT_TYPE_TRACK","userId":"u","event":"report_created"}]}`, "write"},
		{"POST journeys", http.MethodPost, "/v1/journeys", `{"workspace":"` + workspace + `"}`, "admin"},
	}
	for _, r := range rest {
		cases := []struct {
			name  string
			token string
			want  int
		}{
			{"no key", "", http.StatusUnauthorized},
			{"wrong key", bogus, http.StatusUnauthorized},
			{"role too low", tooLow[r.need], http.StatusForbidden},
			{"other workspace", s.keys.otherAdmin, http.StatusForbidden},
		}
		for _, tc := range cases {
			t.Run("REST "+r.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				code, body := s.rest(t, ctx, r.method, r.path, tc.token, r.body)
				if code != tc.want {
					t.Fatalf("status = %d, want %d; body %s", code, tc.want, body)
				}
				checkNoLeak(t, string(body), secrets)
			})
		}
	}
	// Stop the processes so their logs are complete, then look for keys.
	for _, name := range append(append([]string{}, services...), "gateway") {
		s.stop(name)
	}
	checkNoClearKeys(t, s, secrets)
}

// checkNoClearKeys fails if a token appears in the keyring file or in any
// process log: keys are stored hashed and logged by id only.
func checkNoClearKeys(t *testing.T, s *suite, secrets []string) {
	t.Helper()
	files := []string{s.keyring}
	for _, name := range append(append([]string{}, services...), "gateway") {
		files = append(files, filepath.Join(s.dir, name+".log"))
	}
	logged := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		logged += len(b)
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("%s contains a key in clear", filepath.Base(f))
			}
		}
	}
	t.Logf("searched %d bytes of keyring and debug logs for keys", logged)
	if logged < 1000 {
		t.Errorf("only %d bytes of keyring and logs: the clear-key check would prove little", logged)
	}
}

// checkNoLeak fails if an error text contains a key, a workspace name or
// internals (Go error chains, file paths).
func checkNoLeak(t *testing.T, msg string, secrets []string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(msg, sec) {
			t.Errorf("error %q echoes a key", msg)
		}
	}
	for _, leak := range []string{workspace, otherWorkspace, ".go:", "goroutine", "bbolt", "/tmp/"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q leaks %q", msg, leak)
		}
	}
	if msg == "" {
		t.Error("refusal has an empty message")
	}
}
