package account

import (
	"cel.dev/cel-go/cel"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// PQLConfig is how PQL rules read the aggregates: features_used counts the
// event vocabulary's features, as health's default model does, so page
// views, content views and lifecycle events are not feature adoption.
var PQLConfig = Config{Features: vocab.Features()}

// NewPQLEnv is the environment of routing's PQL rules: the aggregate
// functions plus the product-signal variables `status`, `stage`,
// `previous_stage`, `health_band`, `health_score`, `signals` and `account`.
// Routing compiles its rules with it, and the demo generator with it finds
// when the demo's rules start to hold, so the two cannot disagree.
func NewPQLEnv() (*Env, error) {
	return NewEnv(PQLConfig,
		cel.Variable("status", cel.StringType),
		cel.Variable("stage", cel.StringType),
		cel.Variable("previous_stage", cel.StringType),
		cel.Variable("health_band", cel.StringType),
		cel.Variable("health_score", cel.DoubleType),
		cel.Variable("signals", cel.ListType(cel.StringType)),
		cel.Variable("account", cel.MapType(cel.StringType, cel.DynType)),
	)
}
