package main

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.GRPCAddr != "127.0.0.1:7101" || c.Partitions != 8 || c.DedupWindow != 7*24*time.Hour || c.Limits.MaxSkew != 10*time.Minute {
				t.Errorf("defaults = %+v", c)
			}
			if c.dbPath() != "data/ingestion.db" || c.keysPath() != "data/keys.json" {
				t.Errorf("paths = %q, %q", c.dbPath(), c.keysPath())
			}
		}},
		{name: "environment sets defaults", env: map[string]string{"CAIRN_GRPC_ADDR": "127.0.0.1:9999", "CAIRN_DEDUP_WINDOW": "24h"},
			check: func(t *testing.T, c config) {
				if c.GRPCAddr != "127.0.0.1:9999" || c.DedupWindow != 24*time.Hour {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "flags beat the environment", args: []string{"-grpc-addr", "127.0.0.1:1"}, env: map[string]string{"CAIRN_GRPC_ADDR": "127.0.0.1:2"},
			check: func(t *testing.T, c config) {
				if c.GRPCAddr != "127.0.0.1:1" {
					t.Errorf("grpc addr = %q", c.GRPCAddr)
				}
			}},
		{name: "bad environment value", env: map[string]string{"CAIRN_PARTITIONS": "many"}, wantErr: "CAIRN_PARTITIONS"},
		{name: "zero partitions", args: []string{"-partitions", "0"}, wantErr: "-partitions"},
		{name: "zero dedup window", args: []string{"-dedup-window", "0s"}, wantErr: "-dedup-window"},
		{name: "negative retention", args: []string{"-retention", "-1h"}, wantErr: "-retention"},
		{name: "batch above recv limit", args: []string{"-max-batch-bytes", "5000000"}, wantErr: "-max-batch-bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse() = %v, want error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse() = %v", err)
			}
			tc.check(t, c)
		})
	}
}
