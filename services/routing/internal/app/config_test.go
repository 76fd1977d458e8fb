package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/server"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		err     string // substring; "" for none
		batch   int
		stages  string
		workers bool
	}{
		{name: "defaults", batch: DefaultTimerBatch, stages: "127.0.0.1:7102"},
		{name: "flag", args: []string{"-timer-batch", "7", "-stages-addr", "a:1,b:2"}, batch: 7, stages: "a:1,b:2"},
		{name: "environment", env: map[string]string{"CAIRN_TIMER_BATCH": "5", "CAIRN_STAGES_ADDR": "s:1"}, batch: 5, stages: "s:1"},
		{name: "flag beats environment", args: []string{"-timer-batch", "9"}, env: map[string]string{"CAIRN_TIMER_BATCH": "5"}, batch: 9, stages: "127.0.0.1:7102"},
		{name: "empty address disables", args: []string{"-stages-addr", ""}, batch: DefaultTimerBatch, stages: ""},
		{name: "bad timer batch variable", env: map[string]string{"CAIRN_TIMER_BATCH": "lots"}, err: `-timer-batch: environment CAIRN_TIMER_BATCH="lots"`},
		{name: "bad timer batch flag", args: []string{"-timer-batch", "lots"}, err: `invalid value "lots" for flag -timer-batch`},
		{name: "timer batch below one", args: []string{"-timer-batch", "0"}, err: "-timer-batch: 0 is less than 1"},
		{name: "bad shared flag", args: []string{"-partitions", "0"}, err: "-partitions"},
		{name: "more replicas than partitions", args: []string{"-partitions", "2", "-replicas", "3"}, err: "-replicas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want a configuration error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TimerBatch != tc.batch || cfg.StagesAddr != tc.stages || !cfg.Server.ByWorkspace || cfg.Server.Name != "routing" {
				t.Errorf("config: batch %d, stages %q, by workspace %v, name %q; want %d, %q, true, routing",
					cfg.TimerBatch, cfg.StagesAddr, cfg.Server.ByWorkspace, cfg.Server.Name, tc.batch, tc.stages)
			}
		})
	}
}

// TestParseEmptyVariableDisables keeps the address flags' rule: a variable
// set to the empty string disables the consumer.
func TestParseEmptyVariableDisables(t *testing.T) {
	t.Setenv("CAIRN_HEALTH_ADDR", "")
	cfg, err := Parse(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HealthAddr != "" || cfg.IngestionAddr == "" {
		t.Fatalf("health %q, ingestion %q: want the health consumer disabled only", cfg.HealthAddr, cfg.IngestionAddr)
	}
}
