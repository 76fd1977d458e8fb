package play

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/apierr"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/bad")

// privateRefused stands in for the delivery engine's address policy: it
// refuses literal private and loopback addresses (it resolves nothing).
func privateRefused(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && (ip.IsPrivate() || ip.IsLoopback()) {
		return fmt.Errorf("address %s is private; deliveries go to public addresses only", ip)
	}
	return nil
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func example(t testing.TB) *Set {
	t.Helper()
	f, err := Parse(readFile(t, "plays.yaml"))
	if err != nil {
		t.Fatalf("Parse(testdata/plays.yaml): %v", err)
	}
	s, err := Compile(f, privateRefused)
	if err != nil {
		t.Fatalf("Compile(testdata/plays.yaml): %v", err)
	}
	return s
}

func TestExample(t *testing.T) {
	s := example(t)
	if !IsPlays(readFile(t, "plays.yaml")) {
		t.Error("IsPlays(testdata/plays.yaml) = false")
	}
	var ids []string
	for _, p := range s.Plays() {
		ids = append(ids, p.ID)
	}
	want := []string{"pql-follow-up", "renewal", "onboarding", "usage-drop", "slipping", "sla-breach", "churned", "stuck-security-review"}
	if !slices.Equal(ids, want) {
		t.Errorf("plays = %v, want %v", ids, want)
	}
	p, _ := s.Play("pql-follow-up")
	if p.Cooldown != 24*time.Hour || len(p.Actions) != 3 {
		t.Fatalf("pql-follow-up = cooldown %v, %d actions", p.Cooldown, len(p.Actions))
	}
	task := p.Actions[0]
	if task.Type != ActionTask || task.Task.Owner != (Owner{Role: RoleSDR}) || task.Task.Due != 4*time.Hour || task.Task.Title != "Call the PQL within the SLA" {
		t.Errorf("first action = %+v %+v", task, task.Task)
	}
	if a := p.Actions[1]; a.Type != ActionSlack || a.Destination.ID != "cs-slack" || a.Destination.Type != TypeSlack {
		t.Errorf("second action = %+v", a)
	}
	if a := p.Actions[2]; a.Type != ActionWebhook || a.Destination.Secret != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" || a.Destination.Concurrency != 8 {
		t.Errorf("third action = %+v", a)
	}
	on, _ := s.Play("onboarding")
	if a := on.Actions[0]; a.Type != ActionPlaybook || a.Playbook.ID != PlaybookOnboarding || !a.Playbook.Builtin {
		t.Errorf("onboarding's playbook action = %+v", a)
	}
	if a := on.Actions[1]; a.Type != ActionContent || a.ContentID != "onboarding-checklist" || a.URL != "https://docs.example.com/start" {
		t.Errorf("onboarding's content action = %+v", a)
	}
	sla, _ := s.Play("sla-breach")
	if o := sla.Actions[1].Task.Owner; o != (Owner{Role: RolePool, ID: "team-leads"}) || o.String() != "pool:team-leads" {
		t.Errorf("sla-breach owner = %+v", o)
	}
	qbr, ok := s.Playbook("qbr")
	if !ok || qbr.Builtin || len(qbr.Steps) != 3 || qbr.Steps[1].Offset != 14*24*time.Hour || !slices.Equal(qbr.Steps[1].Bands, []string{BandAtRisk, BandNeutral}) {
		t.Fatalf("qbr = %+v", qbr)
	}
	if got := len(qbr.StepsFor(Anchor{Band: BandHealthy})); got != 2 {
		t.Errorf("qbr steps for a healthy account = %d, want 2 (the deck is for at_risk and neutral)", got)
	}
	if _, ok := s.Playbook(PlaybookRenewal); !ok {
		t.Error("built-in renewal playbook missing from the set")
	}
	if d := s.Destinations(); len(d) != 2 || d[0].ID != "crm-webhook" || d[1].Secret != "" {
		t.Errorf("destinations = %+v", d)
	}
	if got := s.Kinds(); !slices.Equal(got, []string{AssignmentCreated, HealthBandChanged, SignalOpened, SLABreach, SLAEscalation, StageEntered, StatusChurned}) {
		t.Errorf("kinds = %v", got)
	}
}

// TestBadFiles compares every problem of each bad file with its golden list
// (go test -run TestBadFiles -update rewrites them).
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(data, privateRefused)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Load: %v, want an *Error", err)
			}
			var b strings.Builder
			for _, p := range pe.Problems {
				if p.Message == "" {
					t.Errorf("problem without a message: %+v", p)
				}
				b.WriteString(p.String() + "\n")
			}
			golden := strings.TrimSuffix(name, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("problems differ from %s:\ngot:\n%s\nwant:\n%s", golden, b.String(), want)
			}
			// Parse alone must refuse the file too (except for what only
			// Compile can know), and Load must say at least as much.
			if _, perr := Parse(data); perr == nil {
				f, _ := Parse(data)
				if _, cerr := Compile(f, privateRefused); cerr == nil {
					t.Error("Parse and Compile accept a bad file")
				}
			}
		})
	}
}

func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want an *Error", err)
	}
	var out []string
	for _, p := range pe.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestLimits(t *testing.T) {
	play := func(i int, when string) string {
		return fmt.Sprintf("  - id: p%d\n    on: [stage.entered]\n    when: %q\n    actions:\n      - task: {title: t, owner: csm}\n", i, when)
	}
	var many strings.Builder
	many.WriteString("plays:\n")
	for i := range MaxPlays + 1 {
		many.WriteString(play(i, "true"))
	}
	big := []byte("plays: []\n# " + strings.Repeat("x", MaxFileBytes) + "\n")
	long := "plays:\n" + play(0, strings.Repeat("1 == 1 && ", 200)+"true")
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"over 1 MiB", big, fmt.Sprintf("file is %d bytes; the limit is 1 MiB", len(big))},
		{"201 plays", []byte(many.String()), "line 1: plays: 201 plays; the limit is 200"},
		{"long expression", []byte(long), "line 4: plays[0].when: expression is 2004 characters; the limit is 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.data, nil)
			got := problemsOf(t, err)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems = %q, want [%q]", got, tt.want)
			}
		})
	}
	// 200 plays are fine.
	var ok strings.Builder
	ok.WriteString("plays:\n")
	for i := range MaxPlays {
		ok.WriteString(play(i, "record.to_stage == \"x\""))
	}
	if _, err := Load([]byte(ok.String()), nil); err != nil {
		t.Errorf("200 plays: %v", err)
	}
}

func TestAliasBombRefused(t *testing.T) {
	// The classic billion laughs: refused at the first anchor, before
	// anything is expanded.
	var b strings.Builder
	b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 'b'; i <= 'i'; i++ {
		fmt.Fprintf(&b, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("plays: *i\n")
	_, err := Parse([]byte(b.String()))
	got := problemsOf(t, err)
	if len(got) != 1 || !strings.Contains(got[0], "line 1: YAML anchors and aliases are not supported") {
		t.Errorf("problems = %q", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"4h", 4 * time.Hour, ""},
		{"30s", 30 * time.Second, ""},
		{"15m", 15 * time.Minute, ""},
		{"2d", 48 * time.Hour, ""},
		{"1w", 7 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0d", 0, ""},
		{"-30d", -30 * 24 * time.Hour, ""},
		{"3650d", MaxDuration, ""},
		{"3651d", 0, "longer than 3650 days"},
		{"99999999999h", 0, "want a whole number"},
		{"4", 0, "want a whole number"},
		{"h", 0, "want a whole number"},
		{"4x", 0, "want a whole number"},
		{"1.5h", 0, "want a whole number"},
		{"", 0, "want a whole number"},
		{"-", 0, "want a whole number"},
		{"--1d", 0, "want a whole number"},
		{" 4h", 0, "want a whole number"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q) error = %v, want %q", tt.in, err, tt.err)
		}
		if tt.err == "" {
			if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
				t.Errorf("FormatDuration(%v) = %q does not read back: %v, %v", got, FormatDuration(got), back, err)
			}
		}
	}
	if _, err := parseDuration("-1h", false); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("negative cooldown: %v", err)
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		in   string
		want Owner
		err  bool
	}{
		{"csm", Owner{Role: RoleCSM}, false},
		{"ae", Owner{Role: RoleAE}, false},
		{"sdr", Owner{Role: RoleSDR}, false},
		{"pool:sdr-pool", Owner{Role: RolePool, ID: "sdr-pool"}, false},
		{"owner:ana@example.com", Owner{Role: RoleOwner, ID: "ana@example.com"}, false},
		{"", Owner{}, true},
		{"CSM", Owner{}, true},
		{"pool:", Owner{}, true},
		{"owner:a b", Owner{}, true},
		{"team:x", Owner{}, true},
		{"owner:" + strings.Repeat("x", apierr.MaxID+1), Owner{}, true},
	}
	for _, tt := range tests {
		got, err := ParseOwner(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseOwner(%q) = %+v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("Owner.String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestErrorMapsToInvalidArgument(t *testing.T) {
	_, err := Load(readFile(t, "bad/references.yaml"), privateRefused)
	if !errors.Is(err, apierr.ErrInvalid) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v does not match apierr.ErrInvalid and ErrInvalid", err)
	}
	var fe *apierr.FieldError
	if !errors.As(err, &fe) {
		t.Fatal("no apierr.FieldError")
	}
	var pe *Error
	errors.As(err, &pe)
	if len(fe.Violations) != len(pe.Problems) || fe.Violations[0].Field != pe.Problems[0].Path || !strings.HasPrefix(fe.Violations[0].Description, "line ") {
		t.Errorf("violations = %+v", fe.Violations)
	}
	// A secret is never quoted back.
	if strings.Contains(err.Error(), "MfKQ9r8G") {
		t.Errorf("error quotes a secret: %v", err)
	}
}

func TestCanonical(t *testing.T) {
	data := readFile(t, "plays.yaml")
	f1, _ := Parse(data)
	// Comments, blank lines, quoting and flow style do not change it.
	reformatted := strings.ReplaceAll(string(data), "# Standard Webhooks secret", "")
	reformatted = strings.ReplaceAll(reformatted, "cooldown: 24h", "cooldown: \"24h\"")
	reformatted = "# a comment\n\n" + reformatted
	f2, err := Parse([]byte(reformatted))
	if err != nil {
		t.Fatal(err)
	}
	if string(Canonical(f1)) != string(Canonical(f2)) {
		t.Errorf("reformatting changed Canonical")
	}
	changed := strings.Replace(string(data), "due: 4h", "due: 5h", 1)
	f3, _ := Parse([]byte(changed))
	if string(Canonical(f1)) == string(Canonical(f3)) {
		t.Errorf("a changed due left Canonical equal")
	}
	s1, _ := Compile(f1, nil)
	s2, _ := Compile(f2, nil)
	if s1.Digest() != s2.Digest() || len(s1.Digest()) != 64 {
		t.Errorf("digests %s, %s", s1.Digest(), s2.Digest())
	}
}

func TestCompileBuiltFile(t *testing.T) {
	// A File built in code compiles the same, and its problems have no line.
	f := &File{Plays: []PlayDef{{ID: "x", On: []string{StageEntered}, When: "record.nope(", Actions: []ActionDef{{Playbook: "qbr"}}}}}
	_, err := Compile(f, nil)
	got := problemsOf(t, err)
	want := []string{
		"plays[0].when: 1:13: Syntax error: mismatched input '<EOF>'",
		`plays[0].actions[0].playbook: no playbook "qbr"; playbooks: onboarding, renewal`,
	}
	if len(got) != len(want) || !strings.HasPrefix(got[0], want[0]) || got[1] != want[1] {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Compile(nil, nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
}

func TestMatch(t *testing.T) {
	s := example(t)
	active := map[string]any{
		"id": "acct-1", "name": "Acme", "segment": "enterprise", "status": "active", "stage": "adoption",
		"journey": "default", "band": "neutral", "score": 61.5, "csm": "cs-1", "ae": "ae-1", "sdr": "",
		"open_signals": []string{"usage_drop_30d"},
	}
	churned := map[string]any{"id": "acct-2", "status": "churned", "segment": "smb", "ae": ""}
	tests := []struct {
		name    string
		in      Input
		want    []string
		wantErr []string // play ids whose evaluation failed
	}{
		{"pql assignment", Input{Kind: AssignmentCreated, Record: map[string]any{"assignment_id": "as-1", "type": "pql", "owner_id": "sdr-1"}, Account: active}, []string{"pql-follow-up"}, nil},
		{"mql assignment", Input{Kind: AssignmentCreated, Record: map[string]any{"type": "mql"}, Account: active}, nil, nil},
		{"pql of a churned account", Input{Kind: AssignmentCreated, Record: map[string]any{"type": "pql"}, Account: churned}, nil, nil},
		{"renewal signal", Input{Kind: SignalOpened, Record: map[string]any{
			"source": "health", "kind": "renewal", "reason": "renewal_window_90", "window_days": 90,
			"attributes": map[string]string{"play": "standard_renewal", "band": "neutral", "window_days": "90"},
		}, Account: active}, []string{"renewal"}, nil},
		{"usage drop on enterprise", Input{Kind: SignalOpened, Record: map[string]any{"source": "health", "kind": "risk", "reason": "usage_drop_30d"}, Account: active}, []string{"usage-drop"}, nil},
		{"stuck security review", Input{Kind: SignalOpened, Record: map[string]any{"source": "stages", "kind": "stuck", "reason": "security_review_open_7d"}, Account: active}, []string{"stuck-security-review"}, nil},
		{"stuck without an AE", Input{Kind: SignalOpened, Record: map[string]any{"source": "stages", "kind": "stuck", "reason": "security_review_open_7d"}, Account: churned}, nil, nil},
		{"entered onboarding", Input{Kind: StageEntered, Record: map[string]any{"journey": "default", "version": 1, "from_stage": "evaluation", "to_stage": "onboarding", "cause": "event", "at": time.Unix(1700000000, 0)}, Account: active}, []string{"onboarding"}, nil},
		{"entered adoption", Input{Kind: StageEntered, Record: map[string]any{"to_stage": "adoption"}, Account: active}, nil, nil},
		{"fell to at risk", Input{Kind: HealthBandChanged, Record: map[string]any{"score": 31.0, "previous_score": 55.0, "band": "at_risk", "previous_band": "neutral"}, Account: active}, []string{"slipping"}, nil},
		{"rose to neutral", Input{Kind: HealthBandChanged, Record: map[string]any{"band": "neutral", "previous_band": "at_risk"}, Account: active}, nil, nil},
		{"sla escalation, no when", Input{Kind: SLAEscalation, Record: map[string]any{"kind": "escalation"}}, []string{"sla-breach"}, nil},
		{"churn, nil account", Input{Kind: StatusChurned, Record: map[string]any{"to_stage": ""}}, []string{"churned"}, nil},
		{"no play listens", Input{Kind: SLAWarning, Record: map[string]any{"kind": "warning_80"}}, nil, nil},
		{"record without the field when reads", Input{Kind: SignalOpened, Record: map[string]any{"kind": "risk"}, Account: active},
			// renewal and stuck-security-review still evaluate: CEL's && is
			// false when either side is, even if the other fails.
			nil, []string{"usage-drop"}},
		{"conditions on an account without status", Input{Kind: AssignmentCreated, Record: map[string]any{"type": "pql"}, Account: map[string]any{}},
			nil, []string{"pql-follow-up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := s.Match(tt.in)
			var got []string
			for _, m := range ms {
				got = append(got, m.Play.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
			var failed []string
			if err != nil {
				var me *MatchError
				if !errors.As(err, &me) {
					t.Fatalf("err = %v, want a *MatchError", err)
				}
				for _, e := range me.Errors {
					failed = append(failed, e.Play.ID)
					if e.Field == "" || e.Err == nil {
						t.Errorf("eval error without field or cause: %+v", e)
					}
				}
			}
			if !slices.Equal(failed, tt.wantErr) {
				t.Errorf("failed plays %v, want %v (err %v)", failed, tt.wantErr, err)
			}
		})
	}
	if _, err := s.Match(Input{Kind: "stage.entred"}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestCostLimit(t *testing.T) {
	// Each expression is cheap to compile and would be expensive to run: it
	// must stop at the cost limit with an error, not stall.
	tests := []struct {
		name    string
		field   string
		expr    string
		account map[string]any
	}{
		{"quadratic over a large list", "conditions", "account.open_signals.all(a, account.open_signals.all(b, a != b || true))",
			map[string]any{"open_signals": make([]string, 2000)}},
		{"nested constant comprehensions", "when", nest(6), map[string]any{}},
		{"regular expressions over a long field", "when", `record.s.matches("y+z") || record.s.matches("y+w")`, map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pd := PlayDef{ID: "x", On: []string{StageEntered}, Actions: []ActionDef{{Task: &TaskDef{Title: "t", Owner: RoleCSM}}}}
			if tt.field == "when" {
				pd.When = tt.expr
			} else {
				pd.Conditions = tt.expr
			}
			s, err := Compile(&File{Plays: []PlayDef{pd}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := map[string]any{"s": strings.Repeat("x", 100000)}
			ms, err := s.Match(Input{Kind: StageEntered, Record: rec, Account: tt.account})
			if len(ms) != 0 || !errors.Is(err, ErrCostLimit) {
				t.Errorf("matches %v, err %v; want none and ErrCostLimit", ms, err)
			}
		})
	}
}

// nest builds L.all(a0, L.all(a1, … true)) over a 30-element list: 30^n
// iterations if nothing stopped it.
func nest(n int) string {
	l := "[" + strings.TrimSuffix(strings.Repeat("0,", 30), ",") + "]"
	expr := "true"
	for i := range n {
		expr = fmt.Sprintf("%s.all(a%d, %s)", l, i, expr)
	}
	return expr
}

func TestSkip(t *testing.T) {
	s := example(t)
	pb, _ := s.Playbook(PlaybookOnboarding)
	steps := pb.StepsFor(Anchor{})
	if len(steps) != 2 {
		t.Fatalf("onboarding steps = %d", len(steps))
	}
	tests := []struct {
		account map[string]any
		skip    bool
		err     bool
	}{
		{map[string]any{"stage": "onboarding"}, false, false},
		{map[string]any{"stage": "adoption"}, true, false},
		{map[string]any{"stage": ""}, true, false},
		{map[string]any{}, false, true},
	}
	for _, tt := range tests {
		for _, st := range steps {
			got, err := s.Skip(st, tt.account)
			if got != tt.skip || (err != nil) != tt.err {
				t.Errorf("Skip(%q, %v) = %v, %v; want %v, error %v", st.Title, tt.account, got, err, tt.skip, tt.err)
			}
		}
	}
	// A step without skip_if is never skipped.
	qbr, _ := s.Playbook("qbr")
	if got, err := s.Skip(qbr.Steps[0], nil); got || err != nil {
		t.Errorf("Skip(no skip_if) = %v, %v", got, err)
	}
	if got, _ := s.Skip(qbr.Steps[2], map[string]any{"status": "churned"}); !got {
		t.Error("qbr follow-up not skipped for a churned account")
	}
}

func TestConcurrentMatch(t *testing.T) {
	s := example(t)
	in := Input{Kind: SignalOpened, Record: map[string]any{"source": "health", "kind": "risk", "reason": "usage_drop_30d"},
		Account: map[string]any{"status": "active", "segment": "enterprise", "ae": "x"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				ms, err := s.Match(in)
				if err != nil || len(ms) != 1 {
					t.Errorf("Match = %v, %v", ms, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "testdata/bad/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("plays: [{id: a, on: [sla.met], actions: [{playbook: renewal}]}]\n"))
	f.Add([]byte("plays:\n  - id: a\n    on: [sla.met]\n    when: '[1,2].exists(x, x == 2)'\n    actions: [{task: {title: t, owner: 'owner:x', due: 1d}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("Parse error %v is not an *Error with problems", err)
			}
			for _, p := range pe.Problems {
				if p.Message == "" || p.Line < 0 {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		s, err := Compile(file, privateRefused)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("Compile error %v is not an *Error with problems", err)
			}
			return
		}
		if _, err := Load(data, privateRefused); err != nil {
			t.Fatalf("Load refuses what Parse and Compile accept: %v", err)
		}
		again, err := Parse(data)
		if err != nil || string(Canonical(again)) != string(Canonical(file)) {
			t.Fatalf("Canonical is not stable: %v", err)
		}
		// Matching any kind against empty and odd inputs must not panic.
		for _, k := range kinds {
			_, _ = s.Match(Input{Kind: k})
			_, _ = s.Match(Input{Kind: k, Record: map[string]any{"type": "pql", "kind": 3}, Account: map[string]any{"status": nil}})
		}
		for _, pb := range s.Playbooks() {
			for _, st := range pb.StepsFor(Anchor{WindowDays: 90, Band: BandAtRisk}) {
				_, _ = s.Skip(st, map[string]any{"stage": "onboarding"})
			}
		}
	})
}

// BenchmarkMatch50 matches one record against 50 plays that all listen to
// its kind, each with a when and a conditions, about half matching.
func BenchmarkMatch50(b *testing.B) {
	var y strings.Builder
	y.WriteString("plays:\n")
	for i := range 50 {
		fmt.Fprintf(&y, "  - id: p%d\n    on: [signal.opened, assignment.created]\n    when: 'record.kind == \"risk\" && record.reason == \"r%d\" || %d %% 2 == 0'\n"+
			"    conditions: 'account.status == \"active\" && account.segment in [\"enterprise\", \"mid-market\"]'\n"+
			"    actions:\n      - task: {title: t, owner: csm, due: 1d}\n", i, i, i)
	}
	s, err := Load([]byte(y.String()), nil)
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		Kind:    SignalOpened,
		Record:  map[string]any{"source": "health", "signal_id": "a/risk/r7", "kind": "risk", "reason": "r7", "message": "m", "state": "open", "attributes": map[string]string{}},
		Account: map[string]any{"id": "a", "status": "active", "segment": "enterprise", "band": "neutral", "open_signals": []string{"r7"}},
	}
	ms, err := s.Match(in)
	if err != nil || len(ms) != 26 {
		b.Fatalf("Match = %d matches, %v; want 26", len(ms), err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Match(in); err != nil {
			b.Fatal(err)
		}
	}
}
