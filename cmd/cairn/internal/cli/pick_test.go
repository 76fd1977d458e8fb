package cli

import (
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestPickReplica checks how a command picks the address of a service
// given as a replica list: ingestion and routing by workspace (--workspace,
// else run.json's), stages and health not at all.
func TestPickReplica(t *testing.T) {
	list := "a:1,b:2,c:3"
	addrs := strings.Split(list, ",")
	tests := []struct {
		name, service, addr, workspace, keyWorkspace string
		want, wantErr                                string
	}{
		{name: "one address", service: "ingestion", addr: "x:1", want: "x:1"},
		{name: "one address of stages", service: "stages", addr: " x:1 ", want: "x:1"},
		{name: "workspace flag", service: "ingestion", addr: list, workspace: "acme", want: addrs[stream.WorkspaceReplica("acme", 3)]},
		{name: "run.json workspace", service: "routing", addr: list, keyWorkspace: "globex", want: addrs[stream.WorkspaceReplica("globex", 3)]},
		{name: "flag beats run.json", service: "routing", addr: list, workspace: "acme", keyWorkspace: "globex", want: addrs[stream.WorkspaceReplica("acme", 3)]},
		{name: "no workspace", service: "ingestion", addr: list, wantErr: "pass --workspace"},
		{name: "stages list", service: "stages", addr: list, wantErr: "name one replica"},
		{name: "empty", service: "health", addr: " , ", wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr
			c := &connFlags{workspace: tc.workspace, keyWorkspace: tc.keyWorkspace, addrs: map[string]*string{tc.service: &addr}}
			got, err := c.pick(tc.service)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("pick = %q, %v; want an error containing %q", got, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Fatalf("pick = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
