package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// TestAuditClusterWide checks that every call authorized with a
// cluster-wide service key is counted by key and method and logged at
// debug, and that calls with any other key, or refused calls, are not.
func TestAuditClusterWide(t *testing.T) {
	var logs bytes.Buffer
	keys := auth.StaticKeys{
		"wide":  {KeyID: "key_cluster_1", Role: auth.RoleService},
		"bound": {KeyID: "key_2", Workspace: "acme", Role: auth.RoleService},
		"read":  {KeyID: "key_3", Workspace: "acme", Role: auth.RoleRead},
	}
	s, err := New(Config{Name: "test", GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, testPolicy, keys)
	if err != nil {
		t.Fatal(err)
	}
	s.GRPC.RegisterService(&testDesc, testImpl{})
	runServer(t, s)
	for _, tc := range []struct {
		token string
		calls int
	}{{"wide", 2}, {"bound", 1}, {"read", 1}, {"unknown", 1}} {
		cc := dial(t, s, tc.token)
		for range tc.calls {
			_ = cc.Invoke(t.Context(), method("Echo"), wrapperspb.String(""), new(wrapperspb.StringValue))
		}
	}
	if got := testutil.ToFloat64(s.audit.calls.WithLabelValues("key_cluster_1", method("Echo"))); got != 2 {
		t.Errorf("cluster-wide calls counted = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(s.audit.calls); n != 1 {
		t.Errorf("%d series, want only the cluster-wide key's", n)
	}
	if got := strings.Count(logs.String(), "call with a cluster-wide service key"); got != 2 {
		t.Errorf("logged %d calls, want 2:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "key_id=key_cluster_1") || strings.Contains(logs.String(), "key_2") {
		t.Errorf("log does not name the cluster-wide key alone:\n%s", logs.String())
	}
}
