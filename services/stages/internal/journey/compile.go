package journey

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"cel.dev/cel-go/cel"
	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"google.golang.org/protobuf/proto"
)

// Bounds on a definition, so one definition cannot make evaluation unbounded.
const (
	// MaxStages is the most stages a journey may have.
	MaxStages = 20
	// MaxCriteria is the most criteria in one list.
	MaxCriteria = 50
	// MaxNames is the most features, integration or activity events.
	MaxNames = 200
)

// Variables every criterion can read besides the aggregate functions.
const (
	// VarStage is the id of the stage being evaluated.
	VarStage = "stage"
	// VarDaysInStage is whole days since the account entered that stage (0 when entering).
	VarDaysInStage = "days_in_stage"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Criterion is a compiled criterion.
type Criterion struct {
	// Name, Expr and Description come from the definition.
	Name, Expr, Description string
	// CheckAfter is the timer delay after stage entry; 0 when none.
	CheckAfter time.Duration
	prog       *account.Program
}

// Stage is a compiled stage.
type Stage struct {
	// Def is the stage as defined.
	Def *stagesv1.Stage
	// Index is the stage's position.
	Index int
	// Entry, Exit and Dropoff are the compiled criteria lists.
	Entry, Exit, Dropoff []*Criterion
	// Moves are the indexes of allowed moves besides the next stage.
	Moves []int
}

// Journey is a compiled definition, safe for concurrent use.
type Journey struct {
	// Def is the definition it was compiled from.
	Def *stagesv1.JourneyDefinition
	// Stages in order.
	Stages []*Stage
	// Config is how events are read into aggregates for this journey.
	Config account.Config
	env    *account.Env
	index  map[string]int
}

// Env returns the CEL environment the journey's criteria were compiled in.
func (j *Journey) Env() *account.Env { return j.env }

// Stage returns the stage with the id, or nil.
func (j *Journey) Stage(id string) *Stage {
	i, ok := j.index[id]
	if !ok {
		return nil
	}
	return j.Stages[i]
}

// NewEnv returns the environment journeys compile in: the account functions
// plus the stage variables.
func NewEnv(cfg account.Config) (*account.Env, error) {
	return account.NewEnv(cfg, cel.Variable(VarStage, cel.StringType), cel.Variable(VarDaysInStage, cel.IntType))
}

// ErrInvalid is returned (wrapped in *InvalidError) by Compile for a bad definition.
var ErrInvalid = errors.New("invalid journey definition")

// InvalidError carries every problem of a definition.
type InvalidError struct {
	// Errors are the problems, by path.
	Errors []*commonv1.ValidationError
}

// Error names the first problem and how many more there are.
func (e *InvalidError) Error() string {
	if len(e.Errors) == 0 {
		return ErrInvalid.Error()
	}
	msg := fmt.Sprintf("%s: %s: %s", ErrInvalid, e.Errors[0].Path, e.Errors[0].Message)
	if len(e.Errors) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(e.Errors)-1)
	}
	return msg
}

// Unwrap lets errors.Is match ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Is makes errors.Is(err, apierr.ErrInvalid) hold: a bad definition is the
// client's error.
func (e *InvalidError) Is(target error) bool { return target == apierr.ErrInvalid }

// As gives apierr the problems as field violations, one per path, so that
// a client is told InvalidArgument with every problem in a BadRequest.
func (e *InvalidError) As(target any) bool {
	fe, ok := target.(**apierr.FieldError)
	if !ok || len(e.Errors) == 0 {
		return false
	}
	vs := make([]apierr.Violation, len(e.Errors))
	for i, ve := range e.Errors {
		vs[i] = apierr.Violation{Field: ve.GetPath(), Description: ve.GetMessage()}
	}
	*fe = &apierr.FieldError{Prefix: ErrInvalid.Error(), Violations: vs}
	return true
}

// Compile validates a definition and compiles every criterion. All problems
// are reported, each with a path such as "stages[onboarding].exit[activated]".
func Compile(def *stagesv1.JourneyDefinition) (*Journey, error) {
	var errs []*commonv1.ValidationError
	add := func(path, format string, args ...any) {
		errs = append(errs, &commonv1.ValidationError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if def == nil {
		return nil, &InvalidError{Errors: []*commonv1.ValidationError{{Path: "definition", Message: "missing"}}}
	}
	if !idPattern.MatchString(def.GetId()) {
		add("id", "must match %s", idPattern)
	}
	for _, l := range []struct {
		name  string
		names []string
	}{{"features", def.GetFeatures()}, {"integration_events", def.GetIntegrationEvents()}, {"activity_events", def.GetActivityEvents()}} {
		if len(l.names) > MaxNames {
			add(l.name, "more than %d names", MaxNames)
		}
		for i, n := range l.names {
			if n == "" || len(n) > 200 {
				add(fmt.Sprintf("%s[%d]", l.name, i), "must be 1 to 200 characters")
			}
		}
	}
	cfg := account.Config{
		Features:          def.GetFeatures(),
		IntegrationEvents: def.GetIntegrationEvents(),
		ActivityEvents:    def.GetActivityEvents(),
	}
	env, err := NewEnv(cfg)
	if err != nil {
		return nil, fmt.Errorf("compile journey %q: %w", def.GetId(), err)
	}
	j := &Journey{Def: proto.Clone(def).(*stagesv1.JourneyDefinition), Config: cfg, env: env, index: map[string]int{}}
	switch n := len(def.GetStages()); {
	case n == 0:
		add("stages", "at least one stage is required")
	case n > MaxStages:
		add("stages", "more than %d stages", MaxStages)
	}
	for i, s := range j.Def.GetStages() {
		key := stageKey(s.GetId(), i)
		if !idPattern.MatchString(s.GetId()) {
			add(fmt.Sprintf("stages[%s].id", key), "must match %s", idPattern)
		} else if _, dup := j.index[s.GetId()]; dup {
			add(fmt.Sprintf("stages[%s].id", key), "duplicate stage id")
		} else {
			j.index[s.GetId()] = i
		}
		j.Stages = append(j.Stages, &Stage{Def: s, Index: i})
	}
	for i, st := range j.Stages {
		s := st.Def
		key := stageKey(s.GetId(), i)
		st.Entry = compileList(env, key, "entry", s.GetEntry(), add)
		st.Exit = compileList(env, key, "exit", s.GetExit(), add)
		st.Dropoff = compileList(env, key, "dropoff", s.GetDropoff(), add)
		for m, id := range s.GetAllowedMoves() {
			t, ok := j.index[id]
			switch {
			case !ok:
				add(fmt.Sprintf("stages[%s].allowed_moves[%d]", key, m), "unknown stage %q", id)
			case t == i:
				add(fmt.Sprintf("stages[%s].allowed_moves[%d]", key, m), "a stage cannot move to itself")
			default:
				st.Moves = append(st.Moves, t)
			}
		}
	}
	if len(errs) > 0 {
		return nil, &InvalidError{Errors: errs}
	}
	return j, nil
}

func compileList(env *account.Env, stage, kind string, list []*stagesv1.Criterion, add func(path, format string, args ...any)) []*Criterion {
	if len(list) > MaxCriteria {
		add(fmt.Sprintf("stages[%s].%s", stage, kind), "more than %d criteria", MaxCriteria)
		return nil
	}
	seen := map[string]bool{}
	var out []*Criterion
	for j, c := range list {
		path := criterionPath(stage, kind, c.GetName(), j)
		switch {
		case !idPattern.MatchString(c.GetName()):
			add(path+".name", "must match %s", idPattern)
		case seen[c.GetName()]:
			add(path+".name", "duplicate criterion name")
		}
		seen[c.GetName()] = true
		var after time.Duration
		if c.GetCheckAfter() != nil {
			after = c.GetCheckAfter().AsDuration()
			if after <= 0 {
				add(path+".check_after", "must be positive")
			}
		}
		prog, err := env.CompileBool(c.GetExpr())
		if err != nil {
			add(path, "%v", err)
			continue
		}
		out = append(out, &Criterion{Name: c.GetName(), Expr: c.GetExpr(), Description: c.GetDescription(), CheckAfter: after, prog: prog})
	}
	return out
}

// Validate reports every problem of a definition; nil means valid.
func Validate(def *stagesv1.JourneyDefinition) []*commonv1.ValidationError {
	_, err := Compile(def)
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Errors
	}
	if err != nil {
		return []*commonv1.ValidationError{{Path: "definition", Message: err.Error()}}
	}
	return nil
}

// ErrNoTemplate is returned when a template id is unknown.
var ErrNoTemplate = errors.New("no such template")
