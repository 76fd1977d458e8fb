package app

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string // ingestion-specific variables
		osEnv   map[string]string // shared variables, read by pkg/server
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.Server.GRPCAddr != "127.0.0.1:7101" || c.Server.Partitions != 8 || c.DedupWindow != 7*24*time.Hour ||
				c.Limits.MaxSkew != 10*time.Minute || c.Retention != 0 || c.MaxInflightBytes != 64<<20 || c.PprofAddr != "" ||
				c.IndexInterval != 100*time.Millisecond || c.Server.GCPercent != 400 || c.Server.MemoryLimitMiB != 512 {
				t.Errorf("defaults = %+v", c)
			}
			if c.Server.DBPath() != "data/ingestion.db" {
				t.Errorf("db path = %q", c.Server.DBPath())
			}
		}},
		{name: "environment sets defaults", env: map[string]string{"CAIRN_DEDUP_WINDOW": "24h", "CAIRN_MAX_SKEW": "1m"},
			osEnv: map[string]string{"CAIRN_GRPC_ADDR": "127.0.0.1:9999"},
			check: func(t *testing.T, c Config) {
				if c.Server.GRPCAddr != "127.0.0.1:9999" || c.DedupWindow != 24*time.Hour || c.Limits.MaxSkew != time.Minute {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "flags beat the environment", args: []string{"-dedup-window", "2h", "-retention", "720h"}, env: map[string]string{"CAIRN_DEDUP_WINDOW": "24h"},
			check: func(t *testing.T, c Config) {
				if c.DedupWindow != 2*time.Hour || c.Retention != 720*time.Hour {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "pprof off by default, on by flag", args: []string{"-pprof-addr", "127.0.0.1:6101"},
			check: func(t *testing.T, c Config) {
				if c.PprofAddr != "127.0.0.1:6101" {
					t.Errorf("pprof addr = %q", c.PprofAddr)
				}
			}},
		{name: "gc percent by flag", args: []string{"-gc-percent", "200"},
			check: func(t *testing.T, c Config) {
				if c.Server.GCPercent != 200 {
					t.Errorf("gc percent = %d, want 200", c.Server.GCPercent)
				}
			}},
		{name: "negative gc percent", args: []string{"-gc-percent", "-1"}, wantErr: "-gc-percent"},
		{name: "memory limit by flag", args: []string{"-memory-limit-mib", "2048"},
			check: func(t *testing.T, c Config) {
				if c.Server.MemoryLimitMiB != 2048 {
					t.Errorf("memory limit = %d MiB, want 2048", c.Server.MemoryLimitMiB)
				}
			}},
		{name: "negative memory limit", args: []string{"-memory-limit-mib", "-1"}, wantErr: "-memory-limit-mib"},
		{name: "zero index interval", args: []string{"-index-interval", "0s"}, wantErr: "-index-interval"},
		{name: "negative serve linger", args: []string{"-serve-linger", "-1ms"}, wantErr: "-serve-linger"},
		{name: "admission defaults", check: func(t *testing.T, c Config) {
			want := Admission{Writes: 128, WritesPerKey: 64, Streams: 128, StreamsPerKey: 64, Readers: 128, ReadersPerKey: 64, Subscribers: 1024, SubscribersPerKey: 512,
				Wait: 100 * time.Millisecond, Target: 100 * time.Millisecond}
			if c.Admission != want || c.MaxInflightBytesPerKey != 32<<20 {
				t.Errorf("admission = %+v, per-key bytes %d", c.Admission, c.MaxInflightBytesPerKey)
			}
		}},
		{name: "admission by flag and environment", args: []string{"-max-subscribers", "10", "-admit-wait", "50ms"},
			env: map[string]string{"CAIRN_MAX_SUBSCRIBERS_PER_KEY": "4"},
			check: func(t *testing.T, c Config) {
				if c.Admission.Subscribers != 10 || c.Admission.SubscribersPerKey != 4 || c.Admission.Wait != 50*time.Millisecond {
					t.Errorf("admission = %+v", c.Admission)
				}
			}},
		{name: "per-key bound above the overall one", args: []string{"-max-readers", "8", "-max-readers-per-key", "9"}, wantErr: "-max-readers-per-key"},
		{name: "zero subscribers", args: []string{"-max-subscribers", "0"}, wantErr: "-max-subscribers"},
		{name: "negative admission wait", args: []string{"-admit-wait", "-1s"}, wantErr: "-admit-wait"},
		{name: "negative admission target", args: []string{"-admit-target", "-1s"}, wantErr: "-admit-target"},
		{name: "per-key bytes above the budget", args: []string{"-max-inflight-bytes", "100", "-max-inflight-bytes-per-key", "200"}, wantErr: "-max-inflight-bytes-per-key"},
		{name: "split by workspace", args: []string{"-replicas", "2", "-replica", "1"},
			check: func(t *testing.T, c Config) {
				// Replica 1 of 2 takes half the workspaces and writes every
				// partition of its own log.
				if !c.Server.ByWorkspace || c.Server.Replica != 1 || c.Server.Replicas != 2 || len(c.Server.OwnedPartitions()) != 8 {
					t.Errorf("server config = %+v, owned %v", c.Server, c.Server.OwnedPartitions())
				}
			}},
		{name: "replica out of range", args: []string{"-replicas", "2", "-replica", "2"}, wantErr: "-replica"},
		{name: "bad environment value", env: map[string]string{"CAIRN_MAX_DEPTH": "deep"}, wantErr: "CAIRN_MAX_DEPTH"},
		{name: "zero dedup window", args: []string{"-dedup-window", "0s"}, wantErr: "-dedup-window"},
		{name: "negative retention", args: []string{"-retention", "-1h"}, wantErr: "-retention"},
		{name: "batch above recv limit", args: []string{"-max-batch-bytes", "5000000"}, wantErr: "-max-batch-bytes"},
		{name: "zero depth", args: []string{"-max-depth", "0"}, wantErr: "limits"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "nope"},
		{name: "log backend bbolt by default", check: func(t *testing.T, c Config) {
			if c.LogBackend != BackendBBolt || c.NATS.URLs != "" || c.NATS.Replicas != 3 {
				t.Errorf("log backend %q, nats %+v", c.LogBackend, c.NATS)
			}
		}},
		{name: "log backend jetstream", args: []string{"-log-backend", "jetstream", "-nats-url", "nats://a:4222,nats://b:4222", "-nats-max-bytes", "1000"},
			env: map[string]string{"CAIRN_NATS_REPLICAS": "5"},
			check: func(t *testing.T, c Config) {
				if c.LogBackend != BackendJetStream || c.NATS.URLs != "nats://a:4222,nats://b:4222" || c.NATS.Replicas != 5 || c.NATS.MaxBytes != 1000 {
					t.Errorf("log backend %q, nats %+v", c.LogBackend, c.NATS)
				}
			}},
		{name: "unknown log backend", args: []string{"-log-backend", "kafka"}, wantErr: "-log-backend"},
		{name: "jetstream without servers", args: []string{"-log-backend", "jetstream"}, wantErr: "-nats-url"},
		{name: "servers without jetstream", args: []string{"-nats-url", "nats://a:4222"}, wantErr: "-nats-url"},
		{name: "jetstream replicas out of range", args: []string{"-log-backend", "jetstream", "-nats-url", "nats://a:4222", "-nats-replicas", "0"}, wantErr: "-nats-replicas"},
		{name: "negative stream bound", args: []string{"-nats-max-bytes", "-1"}, wantErr: "-nats-max-bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.osEnv {
				t.Setenv(k, v)
			}
			c, err := Parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse() = %v, want error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			tc.check(t, c)
		})
	}
}
