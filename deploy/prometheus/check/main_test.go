package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRules(t *testing.T) {
	good, err := os.ReadFile("../alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		old     string
		new     string
		wantErr string
	}{
		{name: "shipped rules are valid"},
		{name: "bad PromQL", old: "> 0.05", new: "> > 0.05", wantErr: "could not parse expression"},
		{name: "missing runbook", old: "runbook: docs/operations.md#cairntargetdown", new: "owner: ops", wantErr: "no runbook"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := string(good)
			if tc.old != "" {
				if !strings.Contains(doc, tc.old) {
					t.Fatalf("fixture lacks %q", tc.old)
				}
				doc = strings.Replace(doc, tc.old, tc.new, 1)
			}
			path := filepath.Join(t.TempDir(), "alerts.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			n, err := checkRules(path)
			if tc.wantErr == "" {
				if err != nil || n == 0 {
					t.Fatalf("checkRules = %d, %v", n, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckDashboard(t *testing.T) {
	good, err := os.ReadFile("../../grafana/cairn.json")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := checkDashboard(good); err != nil || n == 0 {
		t.Fatalf("shipped dashboard: %d queries, %v", n, err)
	}
	bad := strings.Replace(string(good), "rate(cairn_ingest_events_total", "rate(cairn_ingest_events_total[", 1)
	if _, err := checkDashboard([]byte(bad)); err == nil {
		t.Fatal("a broken query passed")
	}
}
