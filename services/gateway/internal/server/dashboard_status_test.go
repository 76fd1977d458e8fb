package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

// TestDashboardStatus serves GET /v1/dashboard/status over the fakes: the
// three services' backlogs, each upstream record counted once, with the
// caller's key forwarded; any failure as a google.rpc.Status naming the
// service.
func TestDashboardStatus(t *testing.T) {
	behind := func(n uint64) *commonv1.Backlog {
		return &commonv1.Backlog{Lag: n, Consumers: []*commonv1.ConsumerLag{{Source: "ingestion", Head: n, Lag: n, HeadKnown: true}}}
	}
	for _, tc := range []struct {
		name                    string
		stages, health, routing *commonv1.Backlog
		healthErr               error
		key                     string
		wantCode                int
		want                    pkgserver.Processing
		wantMessage             string
	}{
		{
			name: "caught up", key: fakes.ReadKey, wantCode: http.StatusOK,
			want: pkgserver.Processing{CaughtUp: true, Services: []pkgserver.ServiceBacklog{
				{Service: "stages", CaughtUp: true}, {Service: "health", CaughtUp: true}, {Service: "routing", CaughtUp: true},
			}},
		},
		{
			// Both are behind on ingestion's partition 0: its first 345
			// events are behind in both, and counted once.
			name: "behind", key: fakes.ReadKey, wantCode: http.StatusOK,
			stages: behind(12000), routing: behind(345),
			want: pkgserver.Processing{Behind: 12000, Events: 12000, Services: []pkgserver.ServiceBacklog{
				{Service: "stages", Behind: 12000}, {Service: "health", CaughtUp: true}, {Service: "routing", Behind: 345},
			}},
		},
		{
			name: "a service unreachable", key: fakes.ReadKey, wantCode: http.StatusServiceUnavailable,
			healthErr: status.Error(codes.Unavailable, "connection refused"), wantMessage: "service temporarily unavailable",
		},
		{
			name: "a key that may not read", key: fakes.ReadKey, wantCode: http.StatusForbidden,
			healthErr:   status.Error(codes.PermissionDenied, "the API key's role may not call this method"),
			wantMessage: "health status: the API key's role may not call this method",
		},
		{name: "no key", wantCode: http.StatusUnauthorized, wantMessage: "missing API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.fakes.Stages.Status.Set(tc.stages, nil)
			e.fakes.Health.Status.Set(tc.health, tc.healthErr)
			e.fakes.Routing.Status.Set(tc.routing, nil)
			r := e.do(t, "GET", "/v1/dashboard/status", tc.key, nil, nil)
			if r.code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", r.code, tc.wantCode, r.body)
			}
			if tc.wantCode != http.StatusOK {
				if b := decodeError(t, r); !strings.Contains(b.Message, tc.wantMessage) || strings.Contains(b.Message, "rpc error") {
					t.Errorf("message %q, want it to contain %q (and no grpc error text)", b.Message, tc.wantMessage)
				}
				return
			}
			var got pkgserver.Processing
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			for name, calls := range map[string]*fakes.Calls{"stages": &e.fakes.Stages.Calls, "health": &e.fakes.Health.Calls, "routing": &e.fakes.Routing.Calls} {
				md, _ := calls.Last()
				if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer "+tc.key {
					t.Errorf("%s got authorization %v, want the caller's key", name, v)
				}
			}
		})
	}
}

// TestDashboardStatusShape pins the JSON the dashboard reads.
func TestDashboardStatusShape(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.fakes.Stages.Status.Set(&commonv1.Backlog{Lag: 7, Consumers: []*commonv1.ConsumerLag{{Source: "ingestion", Cursor: 3, Head: 10, Lag: 7, HeadKnown: true}}}, nil)
	r := e.do(t, "GET", "/v1/dashboard/status", fakes.ReadKey, nil, nil)
	want := `{"behind":7,"events":7,"updates":0,"caughtUp":false,"services":[{"service":"stages","behind":7,"caughtUp":false},` +
		`{"service":"health","behind":0,"caughtUp":true},{"service":"routing","behind":0,"caughtUp":true}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
}
