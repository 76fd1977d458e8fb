// Package play is the "plays as code" model of the plays service: the YAML
// form of a plays file, its validation (every problem, by line and field),
// its compilation into CEL programs, the built-in playbooks, and the pure
// matching of a record against the plays. It does no I/O and keeps no
// clock: deliveries, tasks, cooldowns and business hours are the app's.
//
// # The file
//
// A plays file (what `cairn apply -f plays.yaml` sends) is recognised by its
// top-level plays key (IsPlays). It has three lists:
//
//   - destinations: where messages go. type webhook (a JSON POST signed as
//     Standard Webhooks; secret "whsec_…" required) or slack (an incoming
//     webhook URL, which is its own credential; a secret is refused).
//     concurrency bounds deliveries in flight (1 to 64; left out: the
//     engine's default). URLs must be http(s) (slack: https) with a host
//     and no user info; Compile also asks the app's address policy.
//   - plays: on (one or more trigger kinds, see Kinds), journey (optional;
//     the journey whose stage changes stage.entered and stage.exited match,
//     the workspace's default journey when left out; only with one of those
//     kinds), when (optional CEL over record, account and kind), conditions
//     (optional CEL over account only), cooldown (optional; the same play
//     for the same account), and
//     actions run in order: task {title, owner, due}, slack {destination},
//     webhook {destination}, content {destination, content_id, url} and
//     playbook <id>.
//   - playbooks: the file's own playbooks (the built-in renewal and
//     onboarding need no definition and cannot be redefined). A step has
//     offset (from the run's anchor; may be negative), title, owner, due,
//     and optionally bands (only for accounts in these bands), window (only
//     for runs anchored on that renewal window) and skip_if (CEL over
//     account, evaluated when the step falls due: Set.Skip).
//
// Owners are csm, ae, sdr (the account's owner of that team), pool:<pool_id>
// (routing picks someone) or owner:<owner_id>. Durations (due, offset,
// cooldown) are whole numbers with units s, m, h, d (24 hours) and w, e.g.
// "4h", "2d", "1d12h"; only offset may be negative. due is counted by the app
// in business time.
//
// Limits: a file of 1 MiB (refused before parsing), 200 plays, 50
// destinations, 50 playbooks, 20 actions per play, 50 steps per playbook,
// expressions of 2,000 characters, names and titles of 200. Unknown fields,
// duplicate ids, a second YAML document and NaN or infinite numbers
// (pkg/yamldoc) are refused, and so are YAML anchors and aliases, entirely:
// plays files are short, and refusing them removes alias bombs.
//
// # CEL
//
// One environment, built once and shared, declares:
//
//	kind     string             the trigger kind, e.g. "assignment.created"
//	record   map(string, dyn)   the record that triggered, by kind (below)
//	account  map(string, dyn)   the account, as the app knows it then
//
// when may read all three; conditions and skip_if only account (they are
// compiled in an environment without record and kind, so a reference to
// either is refused at the field). Every expression must return bool: a map
// field is dyn, so compare it (record.flag == true) rather than returning
// it. Each evaluation has a cost budget (CostLimit); one that exceeds it, or
// that fails (e.g. record.x when the record has no x: use has(record.x)),
// does not match and is reported in a *MatchError, never panics.
//
// The app fills record by trigger kind:
//
//	stage.entered, stage.exited, status.churned, status.won_back
//	    journey, version (int), from_stage, to_stage, cause
//	    ("event", "timer", "replay", "regression", "churn", "win_back"),
//	    at (timestamp)
//	signal.opened, signal.closed
//	    source ("stages" | "health"), signal_id, kind ("risk" | "expansion" |
//	    "renewal" | "dropoff" | "stuck"), reason (e.g. "usage_drop_30d",
//	    "renewal_window_90", "<stage>.<criterion>"), message, state,
//	    attributes (map string→string; renewal signals carry play, band,
//	    window_days), window_days (int, renewal only)
//	health.band_changed
//	    score, previous_score (double), band, previous_band ("healthy" |
//	    "neutral" | "at_risk")
//	assignment.created, assignment.reassigned, assignment.closed
//	    assignment_id, type ("mql" | "pql" | "sql" | "closed_won" |
//	    "renewal" | "risk" | "manual"), owner_id, state, reason, rule
//	sla.warning, sla.breach, sla.escalation, sla.met
//	    kind ("warning_50" | "warning_80" | "breach" | "escalation" |
//	    "manager_notified" (under sla.escalation) | "met" | "met_late" (under
//	    sla.met)),
//	    assignment_id, owner_id, new_owner_id, type
//
// and account with: id, name, segment, status ("active" | "churned"), stage
// and journey (the account's stage in the workspace's default journey and
// that journey's id; "" when in none of its stages), stages (map journey
// id → stage, every journey the account is in a stage of), band, score,
// csm, ae, sdr (owner ids, "" when none) and open_signals (the reasons of
// the open signals, a list of strings).
//
// status.churned and status.won_back fire once per change of the
// account's status, although every journey logs the churn or win-back.
//
// # Playbooks
//
// A playbook run is anchored on the record that started it: Anchor carries
// the renewal window (window_days of a renewal signal, else 0) and the
// account's band, and Playbook.StepsFor returns the steps of that run. The
// built-in tables are in BuiltinDefs.
//
// # Applying
//
// Parse checks the file's form; Compile compiles the CEL, resolves actions'
// destinations and playbooks and asks the address policy about each URL;
// Load does both and reports all problems at once. Errors are *Error, a
// list of Problem{Line, Path, Message}; it matches apierr.ErrInvalid and
// converts to an apierr.FieldError. Canonical (and Set.Digest) tell a
// re-applied identical file from a changed one.
package play
