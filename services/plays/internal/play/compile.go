package play

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/cairn-dev/cairn/pkg/domain/journey"
)

// CEL variables.
const (
	// VarKind is the trigger kind of the record being matched.
	VarKind = "kind"
	// VarRecord is the record (map(string, dyn)).
	VarRecord = "record"
	// VarAccount is the account (map(string, dyn)).
	VarAccount = "account"
)

// CostLimit is the runtime cost budget of one evaluation of one expression.
// A comparison costs about 1, a comprehension about 1 per element and step;
// a play's expressions cost well under 100.
const CostLimit = 10000

// ErrCostLimit is returned (wrapped) when an evaluation exceeds CostLimit.
var ErrCostLimit = errors.New("evaluation cost limit exceeded")

// ErrUnknownKind is returned by Match for an input whose Kind is not a trigger kind.
var ErrUnknownKind = errors.New("unknown trigger kind")

type envs struct {
	// full declares kind, record and account: for when.
	full *cel.Env
	// account declares account only: for conditions and skip_if.
	account *cel.Env
}

// celEnvs is built once and shared: a cel.Env is safe for concurrent use.
var celEnvs = sync.OnceValues(func() (*envs, error) {
	common := []cel.EnvOption{
		cel.Variable(VarAccount, cel.MapType(cel.StringType, cel.DynType)),
		cel.ParserExpressionSizeLimit(MaxExprLen),
		cel.ParserRecursionLimit(100),
		// Scores are ints or doubles depending on who filled the map: let
		// "record.score > 50.5" compare without a conversion.
		cel.CrossTypeNumericComparisons(true),
	}
	account, err := cel.NewEnv(common...)
	if err != nil {
		return nil, fmt.Errorf("create CEL environment: %w", err)
	}
	full, err := cel.NewEnv(append(common,
		cel.Variable(VarKind, cel.StringType),
		cel.Variable(VarRecord, cel.MapType(cel.StringType, cel.DynType)))...)
	if err != nil {
		return nil, fmt.Errorf("create CEL environment: %w", err)
	}
	return &envs{full: full, account: account}, nil
})

// program is a compiled bool expression; safe for concurrent use.
type program struct {
	expr string
	prg  cel.Program
}

func (p *program) eval(act interpreter.Activation) (bool, error) {
	out, _, err := p.prg.Eval(act)
	if err != nil {
		if strings.Contains(err.Error(), "cost limit exceeded") {
			return false, ErrCostLimit
		}
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("got %s, want bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// compileExpr compiles a bool expression at path, reporting problems to ps;
// nil when expr is empty or does not compile. accountOnly is for
// conditions and skip_if.
func compileExpr(ps *problems, path, expr string, accountOnly bool) *program {
	if expr == "" {
		return nil
	}
	if strings.TrimSpace(expr) == "" {
		ps.add(path, "expression is empty")
		return nil
	}
	if len([]rune(expr)) > MaxExprLen {
		return nil // validate reported it
	}
	es, err := celEnvs()
	if err != nil {
		ps.add(path, "%v", err)
		return nil
	}
	env := es.full
	if accountOnly {
		env = es.account
	}
	checked, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			m := e.Message
			if accountOnly && (strings.Contains(m, "undeclared reference to 'record'") || strings.Contains(m, "undeclared reference to 'kind'")) {
				m += " (this expression may read only account; record and kind are for when)"
			}
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, m))
		}
		ps.add(path, "%s", strings.Join(msgs, "; "))
		return nil
	}
	if out := checked.OutputType(); !out.IsExactType(cel.BoolType) {
		hint := ""
		if out.IsExactType(cel.DynType) {
			hint = ` (a map field is dyn: compare it, e.g. record.flag == true)`
		}
		ps.add(path, "expression returns %s, want bool%s", out, hint)
		return nil
	}
	// OptOptimize builds constant list and map literals and set membership
	// tests once, while planning, where the cost limit does not apply: that
	// work is linear in the expression, which MaxExprLen bounds (it folds
	// no comprehension).
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	// Runtime cost tracking nearly triples the price of an evaluation (50
	// plays: 38 µs untracked, 104 µs tracked). It is only needed when the
	// static estimate cannot prove the expression stays within CostLimit:
	// comprehensions, regular expressions and membership over the maps'
	// lists, whose sizes are unknown until run time.
	if est, err := env.EstimateCost(checked, sizeUnknown{}); err != nil || est.Max > CostLimit {
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		ps.add(path, "%v", err)
		return nil
	}
	return &program{expr: expr, prg: prg}
}

// sizeUnknown leaves every size and call cost to CEL's defaults: there are
// no custom functions, and the maps' contents are known only at run time.
type sizeUnknown struct{}

func (sizeUnknown) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }

func (sizeUnknown) EstimateCallCost(_, _ string, _ *cost.AstNode, _ []cost.AstNode) *cost.CallEstimate {
	return nil
}

// Destination is a compiled destination. Secret is a credential: never log it.
type Destination struct {
	ID          string
	Type        string
	URL         string
	Secret      string
	Concurrency int
}

// Play is a compiled play.
type Play struct {
	ID, Name string
	// Index is the play's position in the file.
	Index int
	// On lists the trigger kinds.
	On []string
	// Journey is the journey whose stage changes the play's stage.entered
	// and stage.exited triggers match; "" means the default journey.
	Journey string
	// When and Conditions are the source expressions ("" when none).
	When, Conditions string
	// Cooldown is how long after running for an account the play does not
	// run again for it; 0 means no cooldown.
	Cooldown time.Duration
	Actions  []Action
	when     *program
	cond     *program
}

// Action is a compiled action: Type says which fields are set.
type Action struct {
	// Type is task, slack, webhook, content or playbook.
	Type string
	// Task is set for task.
	Task *Task
	// Destination is set for slack, webhook and content.
	Destination *Destination
	// ContentID and URL are set for content (URL may be empty).
	ContentID, URL string
	// Playbook is set for playbook.
	Playbook *Playbook
}

// Task is a task to create.
type Task struct {
	Title string
	Owner Owner
	// Due is 0 when the task has no due date.
	Due time.Duration
}

// Set is a compiled plays file. It is immutable and safe for concurrent use;
// callers must not modify what its methods return.
type Set struct {
	plays     []*Play
	byKind    map[string][]*Play
	playbooks map[string]*Playbook
	books     []*Playbook
	dests     []Destination
	canonical []byte
}

// Compile validates f, compiles every CEL expression and resolves the
// references of actions to destinations and playbooks. checkURL is the
// delivery engine's address policy, called for each destination URL; its
// error is reported at destinations[i].url (nil checks nothing). The error
// is an *Error listing every problem.
func Compile(f *File, checkURL func(string) error) (*Set, error) {
	if f == nil {
		return nil, &Error{Problems: []Problem{{Message: "no plays file"}}}
	}
	ps := &problems{lines: f.lines, typed: map[string]bool{}}
	validate(f, ps)
	return compile(f, ps, checkURL)
}

// Load is Parse then Compile, reporting the problems of both in one *Error.
func Load(data []byte, checkURL func(string) error) (*Set, error) {
	f, ps, fatal := decode(data)
	if fatal {
		return nil, ps.err()
	}
	validate(f, ps)
	return compile(f, ps, checkURL)
}

func compile(f *File, ps *problems, checkURL func(string) error) (*Set, error) {
	s := &Set{byKind: map[string][]*Play{}, playbooks: map[string]*Playbook{}, canonical: Canonical(f)}
	byID := map[string]*Destination{}
	s.dests = make([]Destination, 0, len(f.Destinations))
	for i, d := range f.Destinations {
		if checkURL != nil && d.URL != "" && checkURLSyntax(d) {
			if err := checkURL(d.URL); err != nil {
				ps.add(fmt.Sprintf("destinations[%d].url", i), "%v", err)
			}
		}
		s.dests = append(s.dests, Destination{ID: d.ID, Type: d.Type, URL: d.URL, Secret: d.Secret, Concurrency: d.Concurrency})
	}
	for i := range s.dests {
		if _, dup := byID[s.dests[i].ID]; !dup {
			byID[s.dests[i].ID] = &s.dests[i]
		}
	}

	builtins, err := builtinPlaybooks()
	if err != nil {
		return nil, err
	}
	for id, pb := range builtins {
		s.playbooks[id] = pb
	}
	for i, def := range f.Playbooks {
		pb := &Playbook{ID: def.ID, Name: def.Name, Steps: compileSteps(ps, fmt.Sprintf("playbooks[%d]", i), def.Steps)}
		s.books = append(s.books, pb)
		if _, dup := s.playbooks[def.ID]; !dup {
			s.playbooks[def.ID] = pb
		}
	}

	for i, def := range f.Plays {
		p := fmt.Sprintf("plays[%d]", i)
		pl := &Play{ID: def.ID, Name: def.Name, Index: i, On: slices.Clone(def.On), Journey: def.Journey, When: def.When, Conditions: def.Conditions}
		pl.Cooldown, _ = parseDuration(def.Cooldown, false)
		pl.when = compileExpr(ps, p+".when", def.When, false)
		pl.cond = compileExpr(ps, p+".conditions", def.Conditions, true)
		for j, a := range def.Actions {
			if act, ok := s.resolve(ps, fmt.Sprintf("%s.actions[%d]", p, j), a, byID); ok {
				pl.Actions = append(pl.Actions, act)
			}
		}
		s.plays = append(s.plays, pl)
		for _, k := range pl.On {
			if IsKind(k) && !slices.Contains(s.byKind[k], pl) {
				s.byKind[k] = append(s.byKind[k], pl)
			}
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkURLSyntax reports whether the destination's URL has the right form,
// so that the address policy only sees URLs worth asking about.
func checkURLSyntax(d DestinationDef) bool { return checkURL(d.URL, d.Type == TypeSlack) == nil }

func (s *Set) resolve(ps *problems, p string, a ActionDef, dests map[string]*Destination) (Action, bool) {
	dest := func(path, id, want string) *Destination {
		d, ok := dests[id]
		switch {
		case !ok:
			ps.add(path, "no destination %q in this file%s", clip(id), list("destinations", slices.Sorted(mapKeys(dests))))
			return nil
		case want != "" && d.Type != want:
			ps.add(path, "destination %q is a %s destination; a %s action needs a %s one", id, d.Type, want, want)
			return nil
		}
		return d
	}
	switch {
	case a.Task != nil && a.Slack == nil && a.Webhook == nil && a.Content == nil && a.Playbook == "":
		o, _ := ParseOwner(a.Task.Owner)
		due, _ := parseDuration(a.Task.Due, false)
		return Action{Type: ActionTask, Task: &Task{Title: a.Task.Title, Owner: o, Due: due}}, true
	case a.Slack != nil && a.Task == nil && a.Webhook == nil && a.Content == nil && a.Playbook == "":
		d := dest(p+".slack.destination", a.Slack.Destination, TypeSlack)
		return Action{Type: ActionSlack, Destination: d}, d != nil
	case a.Webhook != nil && a.Task == nil && a.Slack == nil && a.Content == nil && a.Playbook == "":
		d := dest(p+".webhook.destination", a.Webhook.Destination, TypeWebhook)
		return Action{Type: ActionWebhook, Destination: d}, d != nil
	case a.Content != nil && a.Task == nil && a.Slack == nil && a.Webhook == nil && a.Playbook == "":
		d := dest(p+".content.destination", a.Content.Destination, "")
		return Action{Type: ActionContent, Destination: d, ContentID: a.Content.ContentID, URL: a.Content.URL}, d != nil
	case a.Playbook != "" && a.Task == nil && a.Slack == nil && a.Webhook == nil && a.Content == nil:
		pb, ok := s.playbooks[a.Playbook]
		if !ok {
			ps.add(p+".playbook", "no playbook %q%s", clip(a.Playbook), list("playbooks", slices.Sorted(mapKeys(s.playbooks))))
			return Action{}, false
		}
		return Action{Type: ActionPlaybook, Playbook: pb}, true
	}
	return Action{}, false // validate reported it
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func list(what string, ids []string) string {
	if len(ids) == 0 {
		return "; it has no " + what
	}
	return "; " + what + ": " + strings.Join(ids, ", ")
}

func compileSteps(ps *problems, p string, defs []StepDef) []Step {
	out := make([]Step, 0, len(defs))
	for i, d := range defs {
		st := Step{Window: d.Window, Title: d.Title, Bands: slices.Clone(d.Bands), SkipIf: d.SkipIf}
		st.Offset, _ = parseDuration(d.Offset, true)
		st.Owner, _ = ParseOwner(d.Owner)
		st.Due, _ = parseDuration(d.Due, false)
		if d.Offset == "" {
			st.Offset = 0
		}
		if d.Due == "" {
			st.Due = 0
		}
		st.skip = compileExpr(ps, fmt.Sprintf("%s.steps[%d].skip_if", p, i), d.SkipIf, true)
		out = append(out, st)
	}
	return out
}

// builtinPlaybooks compiles BuiltinDefs once.
var builtinPlaybooks = sync.OnceValues(func() (map[string]*Playbook, error) {
	out := map[string]*Playbook{}
	for _, def := range BuiltinDefs() {
		ps := &problems{typed: map[string]bool{}}
		validateStepsOnly(ps, def)
		pb := &Playbook{ID: def.ID, Name: def.Name, Builtin: true, Steps: compileSteps(ps, "builtin["+def.ID+"]", def.Steps)}
		if err := ps.err(); err != nil {
			return nil, fmt.Errorf("built-in playbook %s: %w", def.ID, err)
		}
		out[def.ID] = pb
	}
	return out, nil
})

func validateStepsOnly(ps *problems, def PlaybookDef) {
	for j, s := range def.Steps {
		validateStep(ps, fmt.Sprintf("builtin[%s].steps[%d]", def.ID, j), s)
	}
}

// Builtin returns a built-in playbook by id.
func Builtin(id string) (*Playbook, bool) {
	m, err := builtinPlaybooks()
	if err != nil {
		return nil, false
	}
	pb, ok := m[id]
	return pb, ok
}

// Canonical is the file in a canonical form (JSON, fields in a fixed
// order, no comments or layout): two files with equal Canonical bytes
// compile to the same Set, so re-applying an identical file can be told
// unchanged. It contains the destinations' secrets: store it as such.
func Canonical(f *File) []byte {
	if f == nil {
		return nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		// Only strings, ints, slices and pointers to structs of them:
		// json.Marshal cannot fail on a File.
		return nil
	}
	return b
}

// Canonical returns Canonical of the file the set was compiled from.
func (s *Set) Canonical() []byte { return slices.Clone(s.canonical) }

// Digest is the hex SHA-256 of Canonical: equal digests, same plays.
func (s *Set) Digest() string {
	sum := sha256.Sum256(s.canonical)
	return hex.EncodeToString(sum[:])
}

// Plays returns the plays in file order.
func (s *Set) Plays() []*Play { return slices.Clone(s.plays) }

// Play returns a play by id.
func (s *Set) Play(id string) (*Play, bool) {
	for _, p := range s.plays {
		if p.ID == id {
			return p, true
		}
	}
	return nil, false
}

// Playbook returns a playbook of the file or a built-in one by id.
func (s *Set) Playbook(id string) (*Playbook, bool) {
	pb, ok := s.playbooks[id]
	return pb, ok
}

// Playbooks returns the file's own playbooks, in file order (not the built-ins).
func (s *Set) Playbooks() []*Playbook { return slices.Clone(s.books) }

// Destinations returns the destinations in file order.
func (s *Set) Destinations() []Destination { return slices.Clone(s.dests) }

// Input is one record to match: its trigger kind, the record and the
// account as the package doc lists their fields.
type Input struct {
	Kind    string
	Record  map[string]any
	Account map[string]any
	// InJourney, for a stage.entered or stage.exited input, reports
	// whether its stage change is one of journey id ("" names the
	// workspace's default journey): the app passes pkg/domain/journey's
	// rule for the record. Nil means a stage change of the default journey.
	InJourney func(id string) bool
}

// inJourney reports whether a stage input is a stage change of journey id.
func (in Input) inJourney(id string) bool {
	if in.InJourney == nil {
		return id == "" || id == journey.Default
	}
	return in.InJourney(id)
}

// isStageKind reports whether k is a trigger kind a play's journey narrows.
func isStageKind(k string) bool { return k == StageEntered || k == StageExited }

// Match is a play whose on, when and conditions hold for an input.
type Match struct {
	Play *Play
}

// EvalError is a play whose when or conditions failed to evaluate; the play
// does not match.
type EvalError struct {
	Play *Play
	// Field is "when" or "conditions".
	Field string
	Err   error
}

// Error names the play and field.
func (e *EvalError) Error() string {
	return fmt.Sprintf("play %s: %s: %v", e.Play.ID, e.Field, e.Err)
}

// Unwrap returns the evaluation error (ErrCostLimit, or CEL's).
func (e *EvalError) Unwrap() error { return e.Err }

// MatchError lists the plays that could not be evaluated for one input.
type MatchError struct {
	Errors []*EvalError
}

// Error lists every failed play.
func (e *MatchError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, ee := range e.Errors {
		parts[i] = ee.Error()
	}
	return "match plays: " + strings.Join(parts, "; ")
}

// Unwrap gives errors.Is and errors.As every evaluation error.
func (e *MatchError) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, ee := range e.Errors {
		out[i] = ee
	}
	return out
}

// activation serves the three variables without building a map per input.
type activation struct {
	kind            ref.Val
	record, account ref.Val
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarKind:
		return a.kind, a.kind != nil
	case VarRecord:
		return a.record, a.record != nil
	case VarAccount:
		return a.account, a.account != nil
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

var emptyMap = map[string]any{}

func celMap(m map[string]any) ref.Val {
	if m == nil {
		m = emptyMap
	}
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
}

// Match returns the plays, in file order, whose on includes in.Kind, whose
// journey is the stage change's (stage kinds only) and whose when and
// conditions hold. Plays whose expressions fail to evaluate
// (a missing field, the cost limit) do not match; they are returned as a
// *MatchError beside the matches, so the app can record them. Cooldowns
// are the app's: it knows when a play last ran for an account.
func (s *Set) Match(in Input) ([]Match, error) {
	if !IsKind(in.Kind) {
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, clip(in.Kind))
	}
	plays := s.byKind[in.Kind]
	if len(plays) == 0 {
		return nil, nil
	}
	act := &activation{kind: types.String(in.Kind), record: celMap(in.Record), account: celMap(in.Account)}
	var out []Match
	var failed []*EvalError
	for _, p := range plays {
		if isStageKind(in.Kind) && !in.inJourney(p.Journey) {
			continue
		}
		ok, field, err := p.holds(act)
		if err != nil {
			failed = append(failed, &EvalError{Play: p, Field: field, Err: err})
			continue
		}
		if ok {
			out = append(out, Match{Play: p})
		}
	}
	if len(failed) > 0 {
		return out, &MatchError{Errors: failed}
	}
	return out, nil
}

func (p *Play) holds(act *activation) (bool, string, error) {
	if p.when != nil {
		ok, err := p.when.eval(act)
		if err != nil || !ok {
			return false, "when", err
		}
	}
	if p.cond != nil {
		ok, err := p.cond.eval(act)
		if err != nil || !ok {
			return false, "conditions", err
		}
	}
	return true, "", nil
}

// Skip evaluates the step's skip_if for the account at the time the step
// falls due: true means do not create its task. A step without skip_if is
// never skipped.
func (s *Set) Skip(step Step, account map[string]any) (bool, error) {
	if step.skip == nil {
		return false, nil
	}
	skip, err := step.skip.eval(&activation{account: celMap(account)})
	if err != nil {
		return false, fmt.Errorf("skip_if of step %q: %w", step.Title, err)
	}
	return skip, nil
}

// Kinds returns the trigger kinds at least one play listens to, sorted,
// so that the app can skip records no play wants.
func (s *Set) Kinds() []string { return slices.Sorted(mapKeys(s.byKind)) }
