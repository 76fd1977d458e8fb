package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/testport"
)

// update rewrites the golden files: go test ./internal/cli -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden from the current output")

// goldenNow ends the demo workspace of the golden tests. It lies in the
// future so that no timer (drop-off checks, daily health scores, SLA
// clocks) of the real-clock services ever falls due while the test runs:
// what the services answer depends on the events alone.
const goldenNow = "2099-06-01"

// golden compares got with testdata/golden/name.golden, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// volatile masks what differs from run to run although the state is the
// same: replay ids carry their start time, temporary paths their name.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`("replayId": "|replay )([a-z0-9_-]+-v\d+)-[0-9a-z]+`), "${1}${2}-<id>"},
	{regexp.MustCompile(`/tmp/[^\s"]+/`), "<tmp>/"},
	// SLA clocks run on the wall clock: what they used is a fraction of a
	// second that varies.
	{regexp.MustCompile(`"\d+\.\d+s"`), `"<duration>"`},
	// An SLA clock counts working hours only, so outside them (at night
	// UTC) it has used exactly "0s", inside them a fraction: either way the
	// wall clock's, not the state's.
	{regexp.MustCompile(`"used": "\d+s"`), `"used": "<duration>"`},
}

// clockTime matches a time a table or JSON prints. Routing stamps
// assignments and their SLA clocks with the wall clock, so times within
// weeks of it are masked; event times (in goldenNow's year) are kept.
var clockTime = regexp.MustCompile(`\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?Z)?)?`)

// poolOwner matches the owner of an assignment that a pool decided, in a
// table or CSV row: which SDR of the round-robin pool gets which MQL
// (known-account) depends on the order in which routing meets the
// partitions, and which CSM the least-loaded pool picks for a closed-won
// handoff (closed-won-to-cs) on who is inside working hours on the wall
// clock when the test runs.
// The account's own CSM (existing-csm) is the one that pool picked for its
// closed-won handoff, so it varies with it.
var poolOwner = regexp.MustCompile(`(?m)^(as_<n>[ ,]+(?:mql|pql|closed_won|renewal|risk)[ ,]+[^ ,]+[ ,]+)([a-z]+)([ ,]+)([^ ,]+[ ,]+(?:known-account|closed-won-to-cs|existing-csm))`)

// accountOwner matches the owner line of `cairn account`, which falls back
// to the owner of the account's latest open handoff (a pool's pick).
// The CSV form has it as an "account,owner" row and after each handoff's
// type.
var accountOwner = regexp.MustCompile(`(?m)^(Owner: +|account,owner,|handoff,as_<n>,[a-z_]+,[a-z_]+ )[a-z]+`)

// maskPoolDecisions does for JSON what poolOwner and accountOwner do for
// text: an assignment keeps its rule and pool but not its owner or the
// candidates' order and skip reasons.
func maskPoolDecisions(t *testing.T, s string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("account JSON does not parse: %v\n%s", err, s)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			// Every handoff the account goldens show goes to a pool's pick
			// or to the account's CSM, whom a pool picked (poolOwner).
			if d, ok := v["decision"].(map[string]any); ok {
				v["ownerId"] = "<pool>"
				delete(d, "candidates")
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if _, ok := doc["owner"]; ok {
		doc["owner"] = "<pool>" // as accountOwner
	}
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// jsonOwner matches the owner of an account row in JSON.
var jsonOwner = regexp.MustCompile(`"owner": "[^"]+"`)

// maskOwnerColumn masks the OWNER column of `cairn accounts` (table, CSV
// or JSON): an account's owner is, failing a trait, whoever holds its
// latest assignment (account.Owner), and that is a pool's pick
// (poolOwner). "-", no owner, is kept. The table's column is re-padded to
// one width.
func maskOwnerColumn(s string) string {
	if strings.HasPrefix(s, "{") {
		return jsonOwner.ReplaceAllString(s, `"owner": "<pool>"`)
	}
	lines := strings.Split(s, "\n")
	if strings.Contains(lines[0], ",") {
		col := slices.Index(strings.Split(lines[0], ","), "OWNER")
		for i := 1; col >= 0 && i < len(lines); i++ {
			if f := strings.Split(lines[i], ","); col < len(f) && f[col] != "-" {
				f[col] = "<pool>"
				lines[i] = strings.Join(f, ",")
			}
		}
		return strings.Join(lines, "\n")
	}
	start := strings.Index(lines[0], "OWNER")
	if start < 0 {
		return s
	}
	end := start + len("OWNER")
	for end < len(lines[0]) && lines[0][end] == ' ' {
		end++
	}
	for i, l := range lines {
		if len(l) < end {
			continue
		}
		v := strings.TrimSpace(l[start:end])
		if i > 0 && v != "-" {
			v = "<pool>"
		}
		lines[i] = l[:start] + fmt.Sprintf("%-8s", v) + l[end:]
	}
	return strings.Join(lines, "\n")
}

// assignmentID matches routing's assignment ids, numbered in the order the
// routing consumer happens to meet the partitions.
var assignmentID = regexp.MustCompile(`as_\d{12}`)

func mask(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	now := time.Now()
	s = clockTime.ReplaceAllStringFunc(s, func(m string) string {
		d, err := time.Parse("2006-01-02", m[:10])
		if err != nil || d.Before(now.AddDate(0, 0, -2)) || d.After(now.AddDate(0, 0, 60)) {
			return m
		}
		return "<clock>"
	})
	s = assignmentID.ReplaceAllString(s, "as_<n>")
	s = accountOwner.ReplaceAllString(s, "${1}<pool>")
	return poolOwner.ReplaceAllStringFunc(s, func(m string) string {
		sub := poolOwner.FindStringSubmatch(m)
		// The owner's padding goes with it: a table pads the column to
		// the longest owner shown.
		sep := "  "
		if strings.Contains(sub[3], ",") {
			sep = ","
		}
		return sub[1] + "<pool>" + sep + sub[4]
	})
}

// sortRows sorts the lines after the first (a table's or CSV's header):
// the order of assignments follows their ids, which are not deterministic.
func sortRows(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > 2 {
		slices.Sort(lines[1:])
	}
	return strings.Join(lines, "\n") + "\n"
}

// realSuite builds the four gRPC services, starts them with `cairn run`
// on loopback ports, loads the demo workspace and waits until every
// consumer has caught up. It returns the data directory (run.json there
// tells every command where the services are).
func realSuite(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("golden tests build and run the services")
	}
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Skipf("not inside the go.work workspace: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := t.TempDir()
	services := []string{"ingestion", "stages", "health", "routing"}
	for _, s := range services {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "cairn-"+s), "./services/"+s)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", s, err, b)
		}
	}
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuf{}
	env := &Env{Stdout: logs, Stderr: logs, Getenv: os.Getenv}
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"run", "--bin", bin, "--data", data, "--base-port", fmt.Sprint(testport.Base(t, 25)),
			"--services", strings.Join(services, ","), "--partitions", "2", "--demo-accounts", "6", "--seed", "3", "--now", goldenNow, "--stop-timeout", "1m"}, env)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(2 * time.Minute): // failure guard
			t.Errorf("cairn run did not stop:\n%s", logs)
		}
	})
	waitOutput(t, "demo: accepted", 1, code, logs)
	// The demo's line comes before run.json is written.
	waitFile(t, filepath.Join(data, "run.json"), code, logs)
	ri, err := ReadRunInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	// Caught up: every consumer's lag is 0, twice in a row.
	deadline := time.Now().Add(2 * time.Minute) // failure guard, not a speed assertion
	for streak := 0; streak < 2; {
		if lagging := lagOf(ri.Metrics); lagging == "" {
			streak++
		} else {
			streak = 0
			if time.Now().After(deadline) {
				t.Fatalf("consumers still behind: %s\n%s", lagging, logs)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return data
}

// lagOf returns "" when every cairn_consumer_lag series of every service
// is 0, else the first that is not (or why metrics could not be read).
func lagOf(metrics map[string]string) string {
	seen := 0
	for svc, url := range metrics {
		if svc == "ingestion" || svc == "gateway" {
			continue
		}
		if !strings.HasPrefix(url, "http") {
			url = "http://" + url + "/metrics"
		}
		resp, err := http.Get(url)
		if err != nil {
			return svc + ": " + err.Error()
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "cairn_consumer_lag{") {
				continue
			}
			seen++
			if f := strings.Fields(line); f[len(f)-1] != "0" {
				resp.Body.Close()
				return svc + ": " + line
			}
		}
		resp.Body.Close()
	}
	if seen == 0 {
		return "no cairn_consumer_lag series yet"
	}
	return ""
}

func TestGoldenCommands(t *testing.T) {
	data := realSuite(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		sorted bool
	}{
		{name: "accounts", args: []string{"accounts"}},
		{name: "accounts_json", args: []string{"accounts", "-o", "json"}},
		{name: "accounts_csv", args: []string{"accounts", "-o", "csv"}},
		{name: "accounts_customers_limit", args: []string{"accounts", "--status", "customer", "--limit", "2"}},
		{name: "accounts_healthy", args: []string{"accounts", "--band", "healthy", "-o", "csv"}},
		{name: "status", args: []string{"status"}},
		{name: "status_json", args: []string{"status", "-o", "json"}},
		{name: "owners", args: []string{"owners"}},
		{name: "owners_json", args: []string{"owners", "-o", "json"}},
		{name: "owners_csv", args: []string{"owners", "--team", "csm", "-o", "csv"}},
		{name: "assignments", args: []string{"assignments"}, sorted: true},
		{name: "assignments_json", args: []string{"assignments", "--type", "closed_won", "--account", "cedarpath-logistics", "-o", "json"}},
		{name: "assignments_csv", args: []string{"assignments", "--type", "mql", "-o", "csv"}, sorted: true},
		{name: "funnel", args: []string{"funnel"}},
		{name: "funnel_json", args: []string{"funnel", "-o", "json"}},
		{name: "funnel_csv", args: []string{"funnel", "--by", "segment", "--trend", "month", "-o", "csv"}},
		{name: "funnel_range", args: []string{"funnel", "--from", "2098-12-01", "--to", "2099-05-31", "--conversion-window", "30", "--by", "plan", "--trend", "month"}},
		{name: "funnel_range_json", args: []string{"funnel", "--from", "2098-12-01", "--to", "2099-05-31", "--conversion-window", "30", "--by", "plan", "--trend", "month", "-o", "json"}},
		{name: "funnel_bad_day", args: []string{"funnel", "--from", "2099-13-01"}, code: 2},
		// The demo's second journey, the self-serve one: its own stages and counts.
		{name: "funnel_journey", args: []string{"funnel", "--journey", "self-serve"}},
		{name: "funnel_journey_json", args: []string{"funnel", "--journey", "self-serve", "-o", "json"}},
		{name: "apply_unchanged_routing", args: []string{"apply", "-f", "testdata/golden/routing.yaml"}},
		{name: "apply_invalid_journey", args: []string{"apply", "-f", "testdata/golden/invalid_journey.yaml"}, code: 1},
		{name: "apply_invalid_journey_json", args: []string{"apply", "-f", "testdata/golden/invalid_journey.yaml", "-o", "json"}, code: 1},
		{name: "apply_journey", args: []string{"apply", "-f", "testdata/golden/journey.yaml"}},
		{name: "apply_journey_again_activate_json", args: []string{"apply", "-f", "testdata/golden/journey.yaml", "--activate", "-o", "json"}},
		{name: "apply_health_activate", args: []string{"apply", "-f", "testdata/golden/health.yaml", "--activate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append(tt.args, "--data", data)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			got := mask(out)
			if tt.sorted {
				got = sortRows(got)
			}
			if tt.name == "assignments_json" {
				got = maskPoolDecisions(t, got)
			}
			if strings.HasPrefix(tt.name, "accounts") {
				got = maskOwnerColumn(got)
			}
			if errOut != "" {
				got += "--- stderr\n" + mask(errOut)
			}
			golden(t, tt.name, got)
		})
	}
}

func TestGoldenAccount(t *testing.T) {
	data := realSuite(t)
	code, out, errOut := run(t, "", "accounts", "--status", "customer", "-o", "csv", "--data", data)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("the demo workspace has no customer:\n%s", out)
	}
	// An account whose handoffs all go to its own CSM: which SDR of a
	// round-robin pool gets an MQL depends on the order in which routing
	// meets the partitions, so an account with one would not compare.
	const id = "cedarpath-logistics"
	name := ""
	for _, l := range lines[1:] {
		if f := strings.Split(l, ","); f[0] == id {
			name = f[1]
		}
	}
	if name == "" {
		t.Fatalf("the demo workspace has no customer %s:\n%s", id, out)
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"account", []string{"account", id}},
		{"account_json", []string{"account", id, "-o", "json"}},
		{"account_csv", []string{"account", id, "-o", "csv"}},
		{"account_by_name", []string{"account", name}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append(tt.args, "--data", data)...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			got := mask(out)
			if tt.name == "account_json" {
				got = sortHandoffsJSON(t, maskPoolDecisions(t, got))
			} else {
				got = sortHandoffRows(got)
			}
			golden(t, tt.name, got)
		})
	}
}

// sortHandoffRows sorts the rows of the "Open handoffs" table. Their order
// is their creation time, which for the risk and renewal handoffs opened
// by health's daily timers is the wall clock (masked as <clock>), so it
// varies with how the suite's consumers were scheduled.
func sortHandoffRows(s string) string {
	head, rest, ok := strings.Cut(s, "Open handoffs:\n")
	if !ok {
		return s
	}
	lines := strings.SplitAfter(rest, "\n")
	if len(lines) < 2 {
		return s
	}
	end := 1
	for end < len(lines) && strings.HasPrefix(lines[end], "as_") {
		end++
	}
	rows := slices.Clone(lines[1:end])
	slices.Sort(rows)
	return head + "Open handoffs:\n" + lines[0] + strings.Join(rows, "") + strings.Join(lines[end:], "")
}

// sortHandoffsJSON sorts the account's openHandoffs by their JSON, for
// the reason of sortHandoffRows.
func sortHandoffsJSON(t *testing.T, s string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("account JSON does not parse: %v", err)
	}
	hs, _ := doc["openHandoffs"].([]any)
	key := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	slices.SortStableFunc(hs, func(a, b any) int { return strings.Compare(key(a), key(b)) })
	var out strings.Builder
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestGoldenKeys(t *testing.T) {
	dir := t.TempDir()
	keys := `{"keys":[
{"id":"key_0001","workspace":"acme","role":"admin","hash":"` + strings.Repeat("a", 64) + `","created_at":"2026-11-01T09:00:00Z"},
{"id":"key_0002","workspace":"acme","role":"write","hash":"` + strings.Repeat("b", 64) + `","created_at":"2026-11-02T10:30:00Z"},
{"id":"key_0003","workspace":"","role":"service","hash":"` + strings.Repeat("c", 64) + `","created_at":"2026-11-03T11:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"keys_help", []string{"keys", "-h"}, 0},
		{"keys_list", []string{"keys", "list"}, 0},
		{"keys_list_json", []string{"keys", "list", "-o", "json"}, 0},
		{"keys_list_csv", []string{"keys", "list", "--workspace", "acme", "-o", "csv"}, 0},
		{"keys_revoke", []string{"keys", "revoke", "key_0002"}, 0},
		{"keys_list_after_revoke", []string{"keys", "list"}, 0},
		{"keys_revoke_unknown", []string{"keys", "revoke", "key_0002", "-o", "json"}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append(tt.args, "--data", dir)...)
			if tt.name == "keys_help" {
				code, out, errOut = run(t, "", tt.args...)
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			got := out
			if errOut != "" {
				got += "--- stderr\n" + errOut
			}
			golden(t, tt.name, mask(strings.ReplaceAll(got, dir, "<data>")))
		})
	}
}

func TestGoldenVersion(t *testing.T) {
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/cairn-dev/cairn/cmd/cairn", Version: "v0.9.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	for _, tt := range []struct{ name, format string }{{"version", "table"}, {"version_json", "json"}, {"version_csv", "csv"}} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", "version", "-o", tt.format)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			// The platform is the machine's.
			golden(t, tt.name, strings.ReplaceAll(out, runtimePlatform(), "<os>/<arch>"))
		})
	}
}

// TestHelp checks that every command's -h exits 0 and prints its usage
// and only the flags it uses.
func TestHelp(t *testing.T) {
	for name := range commands() {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, "", name, "-h")
			if code != 0 || !strings.HasPrefix(out, "Usage: cairn "+name) || errOut != "" {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if strings.Contains(out, "-data cairn run") || strings.Contains(out, "`") {
				t.Errorf("help has a flag.PrintDefaults artefact:\n%s", out)
			}
			golden(t, "help_"+name, out)
		})
	}
}

func runtimePlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }
