package natsnode

import (
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	good := Config{Name: "n0", Port: 7121, ClusterPort: 7124, MonitorPort: 7127, StoreDir: "/s",
		Routes: []string{"nats://127.0.0.1:7124", "nats://127.0.0.1:7125", "nats://127.0.0.1:7126"}}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "no name", edit: func(c *Config) { c.Name = "" }, wantErr: "--name"},
		{name: "no store", edit: func(c *Config) { c.StoreDir = "" }, wantErr: "--store"},
		{name: "bad port", edit: func(c *Config) { c.Port = 70000 }, wantErr: "--port"},
		{name: "no route port", edit: func(c *Config) { c.ClusterPort = 0 }, wantErr: "--cluster-port"},
		{name: "bad monitor port", edit: func(c *Config) { c.MonitorPort = -1 }, wantErr: "--monitor-port"},
		{name: "routes not URLs", edit: func(c *Config) { c.Routes = []string{"::nope"} }, wantErr: "--routes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			opts, err := c.Options()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// What ADR 0021 requires of every node.
			if !opts.JetStream || !opts.SyncAlways || opts.StoreDir != "/s" || opts.Cluster.Name != "cairn" || len(opts.Routes) != 3 || opts.Host != "127.0.0.1" || opts.HTTPPort != 7127 {
				t.Errorf("options %+v: want JetStream, sync always, store /s, cluster cairn, 3 routes, loopback, monitor 7127", opts)
			}
		})
	}
}
