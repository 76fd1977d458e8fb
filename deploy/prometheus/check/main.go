// Command check validates Cairn's Prometheus alert rules and the PromQL of
// the Grafana dashboard offline, with Prometheus's own parsers. It is its
// own module, outside go.work, so that the services do not depend on
// Prometheus server code:
//
//	cd deploy/prometheus/check && GOWORK=off go run . ../alerts.yaml ../../grafana/cairn.json
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: check ALERTS.yaml DASHBOARD.json")
		os.Exit(2)
	}
	rules, err := checkRules(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	data, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	exprs, err := checkDashboard(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d alert rules and %d dashboard queries valid\n", rules, exprs)
}

// checkRules parses a rule file as Prometheus does at load time.
func checkRules(path string) (int, error) {
	groups, errs := rulefmt.ParseFile(path)
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert.Value != "" && r.Annotations["runbook"] == "" {
				return 0, fmt.Errorf("alert %s: no runbook annotation", r.Alert.Value)
			}
			n++
		}
	}
	return n, nil
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// grafanaVars replaces Grafana's template variables with values PromQL parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$instance", ".*")

// checkDashboard parses every panel query of a Grafana dashboard.
func checkDashboard(data []byte) (int, error) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, fmt.Errorf("decode dashboard: %w", err)
	}
	var errs []error
	n := 0
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			if _, err := parser.ParseExpr(grafanaVars.Replace(t.Expr)); err != nil {
				errs = append(errs, fmt.Errorf("panel %q: %w", p.Title, err))
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}
