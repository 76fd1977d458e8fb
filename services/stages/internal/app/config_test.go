package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/server"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		err       string // substring; "" means no error
		ingestion string
		noSync    bool
	}{
		{name: "defaults", ingestion: "127.0.0.1:7101"},
		{name: "flags", args: []string{"-ingestion-addr", "a:1,b:2", "-no-sync"}, ingestion: "a:1,b:2", noSync: true},
		{name: "env", env: map[string]string{"CAIRN_INGESTION_ADDR": "ing:7101", "CAIRN_NO_SYNC": "true"}, ingestion: "ing:7101", noSync: true},
		{name: "flag beats env", args: []string{"-ingestion-addr", "flag:1"}, env: map[string]string{"CAIRN_INGESTION_ADDR": "env:1"}, ingestion: "flag:1"},
		{name: "empty ingestion address", args: []string{"-ingestion-addr", ""}, err: "invalid configuration: -ingestion-addr: required"},
		{name: "bad env names flag and variable", env: map[string]string{"CAIRN_NO_SYNC": "maybe"}, err: `-no-sync: environment CAIRN_NO_SYNC="maybe"`},
		{name: "bad shared env", env: map[string]string{"CAIRN_PARTITIONS": "many"}, err: `-partitions: environment CAIRN_PARTITIONS="many"`},
		{name: "bad shared flag value", args: []string{"-replica", "2", "-replicas", "2"}, err: "-replica: 2 is not between 0 and -replicas - 1 (1)"},
		{name: "unknown flag", args: []string{"-ingestion"}, err: "flag provided but not defined: -ingestion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, server.ErrConfig) {
					t.Fatalf("Parse = %v, want a configuration error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.IngestionAddr != tc.ingestion || cfg.NoSync != tc.noSync || cfg.Server.Name != "stages" || cfg.Server.GRPCAddr != "127.0.0.1:7102" {
				t.Errorf("config = ingestion %q no-sync %v name %q grpc %q", cfg.IngestionAddr, cfg.NoSync, cfg.Server.Name, cfg.Server.GRPCAddr)
			}
		})
	}
	if _, err := Parse([]string{"-h"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
}

// TestStartRefusesBadConfig checks that a bad configuration stops the
// process with exit code 2 before anything runs, naming the flag.
func TestStartRefusesBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	ran := false
	code := server.Start(context.Background(), "stages", []string{"-ingestion-addr", ""}, func(string) string { return "" }, &stderr, Parse,
		func(context.Context, Config) error { ran = true; return nil })
	if code != 2 || ran || !strings.Contains(stderr.String(), "cairn-stages: invalid configuration: -ingestion-addr: required") {
		t.Fatalf("exit %d, ran %v, stderr %q", code, ran, stderr.String())
	}
}
