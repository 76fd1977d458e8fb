package play

import "slices"

// Trigger kinds: what a play's `on` lists. The app maps each record of the
// stages, health and routing logs onto one of them.
const (
	// StageEntered is a stages transition into a stage.
	StageEntered = "stage.entered"
	// StageExited is a stages transition out of a stage.
	StageExited = "stage.exited"
	// StatusChurned is a transition with cause churn (to_stage empty).
	StatusChurned = "status.churned"
	// StatusWonBack is a placement with cause win_back.
	StatusWonBack = "status.won_back"
	// SignalOpened is a risk, expansion or renewal signal of health, or a
	// drop-off or stuck signal of stages, that opened; record.kind tells which.
	SignalOpened = "signal.opened"
	// SignalClosed is such a signal that closed.
	SignalClosed = "signal.closed"
	// HealthBandChanged is a health score whose band differs from the previous one.
	HealthBandChanged = "health.band_changed"
	// AssignmentCreated is a routing assignment that was made.
	AssignmentCreated = "assignment.created"
	// AssignmentReassigned is an assignment that moved to another owner.
	AssignmentReassigned = "assignment.reassigned"
	// AssignmentClosed is an assignment that was closed.
	AssignmentClosed = "assignment.closed"
	// SLAWarning is an SLA at 50% or 80% of its time (record.kind warning_50, warning_80).
	SLAWarning = "sla.warning"
	// SLABreach is an SLA whose time ran out.
	SLABreach = "sla.breach"
	// SLAEscalation is a breached assignment escalated to a manager or the pool.
	SLAEscalation = "sla.escalation"
	// SLAMet is an SLA met in time.
	SLAMet = "sla.met"
)

// kinds is every trigger kind, in the order the docs list them.
var kinds = []string{
	StageEntered, StageExited, StatusChurned, StatusWonBack,
	SignalOpened, SignalClosed, HealthBandChanged,
	AssignmentCreated, AssignmentReassigned, AssignmentClosed,
	SLAWarning, SLABreach, SLAEscalation, SLAMet,
}

// Kinds returns every trigger kind.
func Kinds() []string { return slices.Clone(kinds) }

// IsKind reports whether k is a trigger kind.
func IsKind(k string) bool { return slices.Contains(kinds, k) }

// Bands of a health score, as record.band and account.band carry them.
const (
	BandHealthy = "healthy"
	BandNeutral = "neutral"
	BandAtRisk  = "at_risk"
)

var bands = []string{BandHealthy, BandNeutral, BandAtRisk}

// Destination types.
const (
	// TypeWebhook posts a JSON body signed as Standard Webhooks.
	TypeWebhook = "webhook"
	// TypeSlack posts to a Slack incoming webhook.
	TypeSlack = "slack"
)

// Action types: which of an action's keys is set.
const (
	ActionTask     = "task"
	ActionSlack    = "slack"
	ActionWebhook  = "webhook"
	ActionContent  = "content"
	ActionPlaybook = "playbook"
)

// Owner roles of a task or step: the account's owners by team, a routing
// pool, or a named owner.
const (
	RoleCSM   = "csm"
	RoleAE    = "ae"
	RoleSDR   = "sdr"
	RolePool  = "pool"
	RoleOwner = "owner"
)
