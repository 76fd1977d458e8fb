// Package measure compiles health model expressions with pkg/domain/account's CEL
// environment, the one the stages service uses for journey criteria, so a
// measure is "a CEL expression over the same account aggregates".
package measure

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
	"github.com/cairn-dev/cairn/services/health/internal/model"
)

// Config is how health folds events into aggregates and, with a model that
// declares no features of its own, evaluates: the features are the event
// vocabulary's (pkg/domain/vocab: report_created, dashboard_shared, ...;
// content_viewed and other engagement events are not features), and
// integrations come from the canonical integration.connected /
// integration.disconnected, which the aggregates read natively (ingestion
// canonicalises the integration_connected alias), so no IntegrationEvents.
var Config = account.Config{Features: vocab.Features()}

// Features returns the feature event names a model counts: its own list
// when it declares one, else Config.Features.
func Features(m *healthv1.Model) []string {
	if fs := m.GetFeatures(); len(fs) > 0 {
		return fs
	}
	return Config.Features
}

// Input is what a measure sees: one account's aggregates at an evaluation
// time, plus its current journey stage.
type Input struct {
	// Agg is the account's aggregates.
	Agg *account.Aggregates
	// Now is the evaluation time; windows end on its day.
	Now time.Time
	// Stage is the account's current stage id from the stages service ("" if unknown).
	Stage string
	// EnteredAt is when the account entered Stage.
	EnteredAt time.Time
}

// Compiler compiles measures and conditions; it implements model.Compiler
// and is safe for concurrent use.
type Compiler struct {
	env *account.Env
	// byFeatures holds the compilers of models that declare their own
	// features (For), keyed by the list; shared by every compiler From one
	// NewCompiler.
	byFeatures *sync.Map
}

var _ model.Compiler = (*Compiler)(nil)

// NewCompiler builds the environment: pkg/domain/account's functions plus the
// variables stage (string) and days_in_stage (double).
func NewCompiler() (*Compiler, error) {
	return newCompiler(Config, &sync.Map{})
}

func newCompiler(cfg account.Config, cache *sync.Map) (*Compiler, error) {
	env, err := account.NewEnv(cfg, cel.Variable("stage", cel.StringType), cel.Variable("days_in_stage", cel.DoubleType))
	if err != nil {
		return nil, fmt.Errorf("build health measure environment: %w", err)
	}
	return &Compiler{env: env, byFeatures: cache}, nil
}

// For returns the compiler for m: c itself unless m declares its own
// features, else one whose features_used() counts those (built once per
// list).
func (c *Compiler) For(m *healthv1.Model) (*Compiler, error) {
	fs := m.GetFeatures()
	if len(fs) == 0 || slices.Equal(fs, Config.Features) {
		return c, nil
	}
	k := strings.Join(fs, "\x00")
	if v, ok := c.byFeatures.Load(k); ok {
		return v.(*Compiler), nil
	}
	cfg := Config
	cfg.Features = slices.Clone(fs)
	nc, err := newCompiler(cfg, c.byFeatures)
	if err != nil {
		return nil, err
	}
	v, _ := c.byFeatures.LoadOrStore(k, nc)
	return v.(*Compiler), nil
}

// Env is the CEL environment measures compile in.
func (c *Compiler) Env() *account.Env { return c.env }

// Number compiles an expression yielding int or double.
func (c *Compiler) Number(expr string) (model.Measure, error) {
	p, err := c.env.CompileNumber(expr)
	if err != nil {
		return nil, err
	}
	return func(in any) (float64, error) {
		ev, err := evaluator(in, p)
		if err != nil {
			return 0, err
		}
		return p.Number(ev)
	}, nil
}

// Bool compiles an expression yielding bool.
func (c *Compiler) Bool(expr string) (model.Condition, error) {
	p, err := c.env.CompileBool(expr)
	if err != nil {
		return nil, err
	}
	return func(in any) (bool, error) {
		ev, err := evaluator(in, p)
		if err != nil {
			return false, err
		}
		return p.Bool(ev)
	}, nil
}

func evaluator(in any, p *account.Program) (*account.Evaluator, error) {
	act, ok := in.(*Activation)
	if !ok {
		return nil, fmt.Errorf("measure input is %T, want *measure.Activation", in)
	}
	return act.evaluator(p.Env()), nil
}

// Activation binds one Input for evaluation. Keep one per goroutine and
// Reset it for each account (a full rescore binds a hundred thousand
// accounts); it is not safe for concurrent use.
type Activation struct {
	in   Input
	vars map[string]any
	ev   *account.Evaluator
	env  *account.Env
}

// NewActivation returns an Activation bound to no input yet; Reset binds one.
func NewActivation() *Activation {
	return &Activation{vars: make(map[string]any, 2)}
}

// Reset binds in, replacing the previous input.
func (a *Activation) Reset(in Input) {
	a.in = in
	a.vars["stage"] = types.String(in.Stage)
	dis := 0.0
	if !in.EnteredAt.IsZero() {
		dis = in.Now.Sub(in.EnteredAt).Hours() / 24
	}
	a.vars["days_in_stage"] = types.Double(dis)
	if a.ev != nil {
		a.ev.Reset(in.Agg, in.Now, a.vars)
	}
}

// evaluator returns an evaluator of env bound to the current input; models
// compiled by one Compiler share one environment, so it is built once.
func (a *Activation) evaluator(env *account.Env) *account.Evaluator {
	if a.ev == nil || a.env != env {
		a.ev, a.env = env.NewEvaluator(), env
		a.ev.Reset(a.in.Agg, a.in.Now, a.vars)
	}
	return a.ev
}
