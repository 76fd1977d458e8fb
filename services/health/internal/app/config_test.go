package app_test

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/server"

	"github.com/cairn-dev/cairn/services/health/internal/app"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name              string
		args              []string
		env               map[string]string
		err               string // substring; "" means none
		ingestion, stages string
		grpc              string
	}{
		{name: "defaults", ingestion: "127.0.0.1:7101", stages: "127.0.0.1:7102", grpc: "127.0.0.1:7103"},
		{name: "flags", args: []string{"-ingestion-addr", "i0:1,i1:1", "-stages-addr", "s:2", "-grpc-addr", "127.0.0.1:0"},
			ingestion: "i0:1,i1:1", stages: "s:2", grpc: "127.0.0.1:0"},
		{name: "environment", env: map[string]string{"CAIRN_INGESTION_ADDR": "i:1", "CAIRN_STAGES_ADDR": "s0:2,s1:2"},
			ingestion: "i:1", stages: "s0:2,s1:2", grpc: "127.0.0.1:7103"},
		{name: "flag beats environment", args: []string{"-ingestion-addr", "flag:1"}, env: map[string]string{"CAIRN_INGESTION_ADDR": "env:1"},
			ingestion: "flag:1", stages: "127.0.0.1:7102", grpc: "127.0.0.1:7103"},
		{name: "no stages", args: []string{"-stages-addr", ""}, ingestion: "127.0.0.1:7101", grpc: "127.0.0.1:7103"},
		{name: "ingestion required", args: []string{"-ingestion-addr", ""}, err: "invalid configuration: -ingestion-addr: required"},
		{name: "bad environment names flag and variable", env: map[string]string{"CAIRN_PARTITIONS": "many"},
			err: `-partitions: environment CAIRN_PARTITIONS="many"`},
		{name: "bad replica", args: []string{"-replica", "2", "-replicas", "2"}, err: "-replica: 2 is not between 0 and -replicas - 1 (1)"},
		{name: "unknown flag", args: []string{"-ingestion", "x"}, err: "flag provided but not defined: -ingestion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := app.Parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, server.ErrConfig) {
					t.Fatalf("Parse = %v, want a configuration error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.IngestionAddr != tc.ingestion || cfg.StagesAddr != tc.stages || cfg.Server.GRPCAddr != tc.grpc || cfg.Server.Name != "health" {
				t.Errorf("config: ingestion %q stages %q grpc %q name %q; want %q %q %q health",
					cfg.IngestionAddr, cfg.StagesAddr, cfg.Server.GRPCAddr, cfg.Server.Name, tc.ingestion, tc.stages, tc.grpc)
			}
		})
	}
	if _, err := app.Parse([]string{"-h"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
