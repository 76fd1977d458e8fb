package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	routingconfig "github.com/cairn-dev/cairn/services/routing/config"
)

// Kinds of file `cairn apply` accepts.
const (
	KindJourney = "journey"
	KindHealth  = "health"
	KindRouting = "routing"
	KindPlays   = "plays"
)

// maxApplyFile bounds a definition file; the services enforce their own limits.
const maxApplyFile = 1 << 20

var kindAliases = map[string]string{
	"journey": KindJourney, "journeys": KindJourney, "journeydefinition": KindJourney,
	"health": KindHealth, "healthmodel": KindHealth, "health_model": KindHealth, "model": KindHealth,
	"routing": KindRouting, "routingconfig": KindRouting, "routing_config": KindRouting,
	"plays": KindPlays, "play": KindPlays, "playsfile": KindPlays, "plays_file": KindPlays,
}

// Top-level keys that give a file's kind away when it has no `kind:`.
var kindKeys = map[string]string{
	"stages": KindJourney, "features": KindJourney, "integration_events": KindJourney, "activity_events": KindJourney,
	"components": KindHealth, "bands": KindHealth, "profiles": KindHealth,
	"rules": KindRouting, "owners": KindRouting, "pools": KindRouting, "pql_rules": KindRouting, "sla_policies": KindRouting, "fallback_pool": KindRouting,
	"plays": KindPlays, "destinations": KindPlays, "playbooks": KindPlays,
}

// DetectKind decides what a YAML file defines, from a top-level `kind:` field
// or else from its keys, and returns the document without the `kind:` field
// (the services' strict parsers do not know it). A file with a second YAML
// document, or a number that is NaN, infinite or out of range, is refused
// naming the line (and the field).
//
// A plays file's `kind:` line is blanked rather than the document
// re-encoded: the plays service reports problems by line, and re-encoding
// would move every line after a blank line or a comment.
func DetectKind(data []byte) (kind string, body []byte, err error) {
	// Refused here too, so that a second document is never dropped by the
	// re-encoding below and a .nan is named before anything is sent.
	if err := yamldoc.Check(data); err != nil {
		return "", nil, fmt.Errorf("parse YAML: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", nil, fmt.Errorf("parse YAML: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", nil, errors.New("parse YAML: the document must be a mapping")
	}
	m := doc.Content[0]
	votes := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		if key == "kind" {
			k, ok := kindAliases[strings.ToLower(strings.TrimSpace(val.Value))]
			if !ok {
				return "", nil, fmt.Errorf("kind: %q is not one of journey, health, routing, plays", val.Value)
			}
			if k == KindPlays {
				if body, ok := blankLine(data, m.Content[i], val, len(m.Content)/2-1); ok {
					return k, body, nil
				}
			}
			m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			if err := enc.Encode(&doc); err != nil {
				return "", nil, fmt.Errorf("re-encode YAML: %w", err)
			}
			return k, buf.Bytes(), nil
		}
		if k, ok := kindKeys[key]; ok {
			votes[k] = true
		}
	}
	if len(votes) == 1 {
		for k := range votes {
			return k, data, nil
		}
	}
	return "", nil, errors.New("cannot tell whether this is a journey, health model, routing or plays file: add a top-level `kind: journey|health|routing|plays`")
}

// blankLine returns data with the line of a top-level `kind: value` entry
// emptied, so that every other line keeps its number; ok is false when
// the entry does not sit alone on its line (a flow mapping, a value
// continued on the next line), and the caller re-encodes instead. keys is
// how many top-level keys must remain.
func blankLine(data []byte, key, val *yaml.Node, keys int) ([]byte, bool) {
	if key.Column != 1 || val.Kind != yaml.ScalarNode || val.Line != key.Line {
		return nil, false
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if key.Line < 1 || key.Line > len(lines) {
		return nil, false
	}
	out := make([]byte, 0, len(data))
	for i, l := range lines {
		if i == key.Line-1 {
			if bytes.HasSuffix(l, []byte("\r\n")) {
				l = []byte("\r\n")
			} else if bytes.HasSuffix(l, []byte("\n")) {
				l = []byte("\n")
			} else {
				l = nil
			}
		}
		out = append(out, l...)
	}
	// What is left must be the same mapping without kind: else the value
	// went on past its line.
	var doc yaml.Node
	if yaml.Unmarshal(out, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode || len(doc.Content[0].Content) != 2*keys {
		return nil, false
	}
	for i := 0; i < len(doc.Content[0].Content); i += 2 {
		if doc.Content[0].Content[i].Value == "kind" {
			return nil, false
		}
	}
	return out, true
}

// applier applies definitions to the services over existing connections.
type applier struct {
	workspace string
	// activate makes what is applied live: a journey is replayed over the
	// history first, so existing accounts are placed, then activated; a
	// health model is activated and the workspace rescored.
	activate bool
	// timeout bounds each call; replayTimeout bounds waiting for a replay.
	timeout, replayTimeout time.Duration
	clock                  clock.Clock
	// dryRun validates plays files and stores nothing; other kinds are
	// refused, having no such mode.
	dryRun bool
	// progress receives replay progress lines (nil: none).
	progress io.Writer
	stages   stagesv1.StagesServiceClient
	health   healthv1.HealthServiceClient
	routing  routingv1.RoutingServiceClient
	plays    playsv1.PlaysServiceClient
}

func newApplier(workspace string, activate bool, stages, health, routing, plays grpc.ClientConnInterface) *applier {
	return &applier{
		workspace: workspace, activate: activate, timeout: 30 * time.Second, replayTimeout: 30 * time.Minute, clock: clock.Real{},
		stages: stagesv1.NewStagesServiceClient(stages), health: healthv1.NewHealthServiceClient(health), routing: routingv1.NewRoutingServiceClient(routing),
		plays: playsv1.NewPlaysServiceClient(plays),
	}
}

// applyResult is what applying one file did; -o json prints a list of them.
type applyResult struct {
	File      string `json:"file"`
	Kind      string `json:"kind"`
	ID        string `json:"id,omitempty"`
	Version   uint32 `json:"version"`
	Unchanged bool   `json:"unchanged"`
	Active    bool   `json:"active"`
	// Journeys applied with --activate: the replay that placed existing
	// accounts, and how many it put in each stage.
	ReplayID    string           `json:"replayId,omitempty"`
	StageCounts map[string]int64 `json:"stageCounts,omitempty"`
	// Health models applied with --activate: accounts rescored.
	Rescored *int64 `json:"rescored,omitempty"`
	// Routing files: owners and pools sent, and how many of them changed.
	Owners        int `json:"owners,omitempty"`
	OwnersChanged int `json:"ownersChanged,omitempty"`
	Pools         int `json:"pools,omitempty"`
	PoolsChanged  int `json:"poolsChanged,omitempty"`
	Rules         int `json:"rules,omitempty"`
	// Plays files: what the version holds; DryRun when it was only
	// validated.
	Plays        int      `json:"plays,omitempty"`
	Destinations int      `json:"destinations,omitempty"`
	Playbooks    []string `json:"playbooks,omitempty"`
	DryRun       bool     `json:"dryRun,omitempty"`
	// Summary is the line the table output prints; Next, what to run next.
	Summary string `json:"summary"`
	Next    string `json:"next,omitempty"`
}

// problem is one validation error, placed in the file when its path or
// message says where.
type problem struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// validationError carries every problem the services (or the local routing
// parser) found in a file.
type validationError struct {
	what     string
	problems []problem
}

func (e *validationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is invalid (%d problem", e.what, len(e.problems))
	if len(e.problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.problems {
		b.WriteString("\n  ")
		if p.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		fmt.Fprintf(&b, "%s: %s", dash(p.Field), p.Message)
	}
	return b.String()
}

// yamlLine matches the "line N: ..." entries YAML decoders report.
var yamlLine = regexp.MustCompile(`^\s*(?:.*?: )?line (\d+): (.*)$`)

// problemsOf turns field/message pairs into problems with lines: a message
// listing several "line N: ..." decoder errors becomes one problem each; a
// field path is looked up in the file.
func problemsOf(data []byte, pairs [][2]string) []problem {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		doc = yaml.Node{}
	}
	var out []problem
	for _, pr := range pairs {
		field, msg := pr[0], pr[1]
		var split []problem
		for _, l := range strings.Split(msg, "\n") {
			if m := yamlLine.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				split = append(split, problem{Line: n, Field: field, Message: strings.TrimSpace(m[2])})
			}
		}
		if len(split) > 0 {
			out = append(out, split...)
			continue
		}
		out = append(out, problem{Line: lineOf(&doc, field), Field: field, Message: msg})
	}
	// In file order; problems the file cannot place come last.
	sort.SliceStable(out, func(i, j int) bool {
		li, lj := out[i].Line, out[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	return out
}

// fieldAliases maps API field names in error paths to the YAML keys the
// files use for them.
var fieldAliases = map[string][]string{
	"allowed_moves": {"moves"}, "owner_team": {"owner"}, "pool_id": {"pool"}, "owner_id": {"owner", "id"},
	"fallback_pool_id": {"fallback_pool"}, "pql_rules": {"pql_rules", "pql"}, "sla_policies": {"sla_policies", "slas"},
}

// pathPart matches one step of an error path: "stages[onboarding]", "exit", "[2]".
var pathPart = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)?((?:\[[^\]]*\])*)`)

// lineOf finds the line of the element an error path such as
// "stages[onboarding].exit[activated].expr" or "components[0].weight" names,
// or of the deepest part of it that the file has; 0 when none.
func lineOf(doc *yaml.Node, path string) int {
	if doc == nil || len(doc.Content) == 0 {
		return 0
	}
	n, line := doc.Content[0], 0
	for _, part := range strings.Split(path, ".") {
		m := pathPart.FindStringSubmatch(part)
		if m == nil || m[0] != part {
			return line
		}
		if m[1] != "" {
			next := mapValue(n, m[1])
			if next == nil {
				return line
			}
			n, line = next, next.Line
		}
		for _, key := range regexp.MustCompile(`\[([^\]]*)\]`).FindAllStringSubmatch(m[2], -1) {
			next := seqItem(n, key[1])
			if next == nil {
				return line
			}
			n, line = next, next.Line
		}
	}
	return line
}

func mapValue(n *yaml.Node, name string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	names := append([]string{name, lowerCamel(name)}, fieldAliases[name]...)
	for _, want := range names {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == want {
				v := n.Content[i+1]
				if v.Kind == yaml.ScalarNode {
					return &yaml.Node{Kind: yaml.ScalarNode, Line: n.Content[i].Line, Value: v.Value}
				}
				return v
			}
		}
	}
	return nil
}

func lowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// seqItem is the element of a sequence at an index, or whose id or name is key.
func seqItem(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.SequenceNode {
		return nil
	}
	for _, it := range n.Content {
		for _, f := range []string{"id", "name", "owner_id", "pool_id"} {
			if v := mapValue(it, f); v != nil && v.Value == key {
				return it
			}
		}
	}
	if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
		return n.Content[i]
	}
	return nil
}

// invalid turns a service's InvalidArgument with a BadRequest detail into
// a validationError listing every violation; other errors pass through.
func invalid(what string, data []byte, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	var pairs [][2]string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				pairs = append(pairs, [2]string{v.GetField(), v.GetDescription()})
			}
		}
	}
	if len(pairs) == 0 {
		return err
	}
	return &validationError{what: what, problems: problemsOf(data, pairs)}
}

// call bounds one call by the applier's timeout.
func (a *applier) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout)
}

// apply applies one file (name is for messages) and returns what it did.
func (a *applier) apply(ctx context.Context, name string, data []byte) (*applyResult, error) {
	kind, body, err := DetectKind(data)
	if err != nil {
		return nil, err
	}
	res := &applyResult{File: name, Kind: kind}
	if a.dryRun && kind != KindPlays {
		return nil, usagef("--dry-run validates plays files only; this is a %s file", kind)
	}
	switch kind {
	case KindPlays:
		return res, a.applyPlays(ctx, res, data, body)
	case KindJourney:
		return res, a.applyJourney(ctx, res, data, body)
	case KindHealth:
		return res, a.applyModel(ctx, res, data, body)
	default:
		return res, a.applyRouting(ctx, res, data, body)
	}
}

func (a *applier) applyJourney(ctx context.Context, res *applyResult, data, body []byte) error {
	cctx, cancel := a.call(ctx)
	defer cancel()
	// With --activate the version goes live only once a replay has placed
	// the existing accounts; activating it here would skip them.
	resp, err := a.stages.ApplyJourney(cctx, &stagesv1.ApplyJourneyRequest{Workspace: a.workspace, Yaml: string(body)})
	if err != nil {
		return fmt.Errorf("apply journey: %w", invalid("journey", data, err))
	}
	d := resp.GetDefinition()
	res.ID, res.Version, res.Unchanged, res.Active = d.GetId(), d.GetVersion(), resp.GetUnchanged(), resp.GetActive()
	if res.Unchanged {
		res.Summary = fmt.Sprintf("journey %s unchanged: identical to version %d (active: %t); no new version stored", d.GetId(), d.GetVersion(), res.Active)
	} else {
		res.Summary = fmt.Sprintf("journey %s version %d applied (%d stages, active: %t)", d.GetId(), d.GetVersion(), len(d.GetStages()), res.Active)
	}
	if !a.activate {
		res.Next = fmt.Sprintf("existing accounts are not placed by a new version: run cairn apply -f %s --activate to replay the history with version %d and then make it live", res.File, d.GetVersion())
		return nil
	}
	rp, err := a.replay(ctx, d.GetId(), d.GetVersion())
	if err != nil {
		return err
	}
	cctx2, cancel2 := a.call(ctx)
	defer cancel2()
	if _, err := a.stages.ActivateJourney(cctx2, &stagesv1.ActivateJourneyRequest{Workspace: a.workspace, JourneyId: d.GetId(), Version: d.GetVersion()}); err != nil {
		return fmt.Errorf("activate journey %s version %d after replay %s: %w", d.GetId(), d.GetVersion(), rp.GetReplayId(), err)
	}
	res.Active, res.ReplayID, res.StageCounts = true, rp.GetReplayId(), rp.GetStageCounts()
	stages := make([]string, 0, len(rp.GetStageCounts()))
	var placed int64
	for st, n := range rp.GetStageCounts() {
		stages = append(stages, fmt.Sprintf("%s %d", st, n))
		placed += n
	}
	sort.Strings(stages)
	res.Summary += fmt.Sprintf("; replayed the history (%d accounts placed: %s) and activated version %d", placed, strings.Join(stages, ", "), d.GetVersion())
	return nil
}

// replay starts a replay of version and waits for it to finish.
func (a *applier) replay(ctx context.Context, id string, version uint32) (*stagesv1.Replay, error) {
	cctx, cancel := a.call(ctx)
	start, err := a.stages.StartReplay(cctx, &stagesv1.StartReplayRequest{Workspace: a.workspace, JourneyId: id, Version: version})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("start replay of journey %s version %d: %w", id, version, err)
	}
	rid := start.GetReplay().GetReplayId()
	wait := a.clock.After(a.replayTimeout)
	for {
		cctx, cancel := a.call(ctx)
		resp, err := a.stages.GetReplay(cctx, &stagesv1.GetReplayRequest{Workspace: a.workspace, ReplayId: rid})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", rid, err)
		}
		rp := resp.GetReplay()
		switch rp.GetState() {
		case stagesv1.ReplayState_REPLAY_STATE_DONE:
			return rp, nil
		case stagesv1.ReplayState_REPLAY_STATE_FAILED:
			return nil, fmt.Errorf("replay %s failed: %s; version %d is stored but not activated", rid, rp.GetError(), version)
		}
		if a.progress != nil {
			fmt.Fprintf(a.progress, "replay %s: %d of %d records\n", rid, rp.GetProcessed(), rp.GetTotal())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("replay %s: %w", rid, ctx.Err())
		case <-wait:
			return nil, fmt.Errorf("replay %s still running after %s (--replay-timeout); when it is done, run cairn apply again with --activate", rid, a.replayTimeout)
		case <-a.clock.After(replayPoll):
		}
	}
}

// replayPoll is how often apply --activate asks how a replay is doing.
const replayPoll = 200 * time.Millisecond

func (a *applier) applyModel(ctx context.Context, res *applyResult, data, body []byte) error {
	cctx, cancel := a.call(ctx)
	defer cancel()
	resp, err := a.health.ApplyModel(cctx, &healthv1.ApplyModelRequest{Workspace: a.workspace, Yaml: string(body), Activate: a.activate})
	if err != nil {
		return fmt.Errorf("apply health model: %w", invalid("health model", data, err))
	}
	m := resp.GetModel()
	res.ID, res.Version, res.Unchanged, res.Active = m.GetId(), m.GetVersion(), resp.GetUnchanged(), resp.GetActive()
	if res.Unchanged {
		res.Summary = fmt.Sprintf("health model %s unchanged: identical to version %d (active: %t); no new version stored", m.GetId(), m.GetVersion(), res.Active)
	} else {
		res.Summary = fmt.Sprintf("health model %s version %d applied (%d components, active: %t)", m.GetId(), m.GetVersion(), len(m.GetComponents()), res.Active)
	}
	if !a.activate {
		if !res.Active {
			res.Next = fmt.Sprintf("version %d does not score anyone yet: run cairn apply -f %s --activate to make it the scoring model and rescore every account", m.GetVersion(), res.File)
		}
		return nil
	}
	rctx, rcancel := a.call(ctx)
	defer rcancel()
	rs, err := a.health.Rescore(rctx, &healthv1.RescoreRequest{Workspace: a.workspace})
	if err != nil {
		return fmt.Errorf("rescore with health model %s version %d: %w", m.GetId(), m.GetVersion(), err)
	}
	n := rs.GetAccounts()
	res.Rescored = &n
	res.Summary += fmt.Sprintf("; %d accounts rescored", n)
	return nil
}

func (a *applier) applyRouting(ctx context.Context, res *applyResult, data, body []byte) error {
	cfg, owners, pools, err := routingconfig.Parse(body)
	if err != nil {
		var ce *routingconfig.Error
		if errors.As(err, &ce) {
			pairs := make([][2]string, len(ce.Problems))
			for i, p := range ce.Problems {
				pairs[i] = [2]string{p.GetPath(), p.GetMessage()}
			}
			return &validationError{what: "routing file", problems: problemsOf(data, pairs)}
		}
		return fmt.Errorf("parse routing file: %w", err)
	}
	cctx, cancel := a.call(ctx)
	defer cancel()
	// Owners and pools go first: the config's rules refer to them, and
	// the service checks those references when the config is applied.
	// Those equal to what is stored are not sent again.
	res.Owners, res.Pools = len(owners), len(pools)
	for _, o := range owners {
		if got, err := a.routing.GetOwner(cctx, &routingv1.GetOwnerRequest{Workspace: a.workspace, OwnerId: o.GetOwnerId()}); err == nil && proto.Equal(got.GetOwner(), o) {
			continue
		}
		if _, err := a.routing.UpsertOwner(cctx, &routingv1.UpsertOwnerRequest{Workspace: a.workspace, Owner: o}); err != nil {
			return fmt.Errorf("upsert owner %q: %w", o.GetOwnerId(), invalid("routing file", data, err))
		}
		res.OwnersChanged++
	}
	for _, p := range pools {
		if got, err := a.routing.GetPool(cctx, &routingv1.GetPoolRequest{Workspace: a.workspace, PoolId: p.GetPoolId()}); err == nil && proto.Equal(got.GetPool(), p) {
			continue
		}
		if _, err := a.routing.UpsertPool(cctx, &routingv1.UpsertPoolRequest{Workspace: a.workspace, Pool: p}); err != nil {
			return fmt.Errorf("upsert pool %q: %w", p.GetPoolId(), invalid("routing file", data, err))
		}
		res.PoolsChanged++
	}
	resp, err := a.routing.ApplyConfig(cctx, &routingv1.ApplyConfigRequest{Workspace: a.workspace, Config: cfg})
	if err != nil {
		return fmt.Errorf("apply routing config: %w", invalid("routing file", data, err))
	}
	c := resp.GetConfig()
	res.Version, res.Unchanged, res.Active, res.Rules = c.GetVersion(), resp.GetUnchanged(), true, len(c.GetRules())
	people := fmt.Sprintf("%d owners and %d pools upserted", res.OwnersChanged, res.PoolsChanged)
	if same := len(owners) + len(pools) - res.OwnersChanged - res.PoolsChanged; same > 0 {
		people += fmt.Sprintf(" (%d owners and %d pools unchanged)", len(owners)-res.OwnersChanged, len(pools)-res.PoolsChanged)
	}
	if res.Unchanged {
		res.Summary = fmt.Sprintf("routing: %s; config unchanged: identical to version %d, no new version stored", people, c.GetVersion())
	} else {
		res.Summary = fmt.Sprintf("routing: %s; config version %d applied (%d rules, %d PQL rules, %d SLA policies)",
			people, c.GetVersion(), len(c.GetRules()), len(c.GetPqlRules()), len(c.GetSlaPolicies()))
	}
	res.Unchanged = res.Unchanged && res.OwnersChanged == 0 && res.PoolsChanged == 0
	return nil
}

func (a *applier) applyPlays(ctx context.Context, res *applyResult, data, body []byte) error {
	cctx, cancel := a.call(ctx)
	defer cancel()
	resp, err := a.plays.ApplyPlays(cctx, &playsv1.ApplyPlaysRequest{Workspace: a.workspace, Yaml: string(body), DryRun: a.dryRun})
	if err != nil {
		return fmt.Errorf("apply plays: %w", invalid("plays file", data, err))
	}
	v := resp.GetPlays()
	res.Version, res.Unchanged, res.DryRun = v.GetVersion(), resp.GetUnchanged(), a.dryRun
	res.Plays, res.Destinations, res.Playbooks = len(v.GetPlays()), len(v.GetDestinations()), v.GetPlaybooks()
	// Plays have no activation step: a stored version is the live one.
	res.Active = !a.dryRun
	contents := fmt.Sprintf("%d plays, %d destinations, playbooks: %s", res.Plays, res.Destinations, dash(strings.Join(res.Playbooks, ", ")))
	switch {
	case a.dryRun:
		res.Summary = fmt.Sprintf("plays file is valid (%s); --dry-run: nothing stored", contents)
	case res.Unchanged:
		res.Summary = fmt.Sprintf("plays unchanged: identical to version %d, the live one; no new version stored", v.GetVersion())
	default:
		res.Summary = fmt.Sprintf("plays version %d applied (%s); live now", v.GetVersion(), contents)
	}
	return nil
}

func runApply(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "apply", "apply -f FILE.yaml [-f ...] [--activate | --dry-run] [-o table|json]")
	c := addConnFlags(fs, env, []string{"stages", "health", "routing", "plays"})
	var files multiFlag
	fs.Var(&files, "f", "journey, health model, routing or plays YAML file (repeatable; - for stdin)")
	activate := fs.Bool("activate", false, "make what is applied live: replay a journey over the history so existing accounts are placed, then activate it; activate a health model and rescore every account (plays are live when applied)")
	dryRun := fs.Bool("dry-run", false, "validate plays files and store nothing (plays files only)")
	replayTimeout := fs.Duration("replay-timeout", 30*time.Minute, "with --activate, how long to wait for a journey's replay")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	files = append(files, pos...)
	if len(files) == 0 {
		return usagef("name a file with -f")
	}
	if *dryRun && *activate {
		return usagef("--dry-run and --activate do not combine")
	}
	if err := c.resolve(fs); err != nil {
		return err
	}
	conns := map[string]*grpc.ClientConn{}
	for _, s := range []string{"stages", "health", "routing", "plays"} {
		conn, err := c.dial(s)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[s] = conn
	}
	a := newApplier(c.workspace, *activate, conns["stages"], conns["health"], conns["routing"], conns["plays"])
	a.timeout, a.replayTimeout, a.dryRun = c.timeout, *replayTimeout, *dryRun
	if env.Clock != nil {
		a.clock = env.Clock
	}
	if env.IsTTY && c.output == "table" {
		a.progress = env.Stderr
	}
	results := []*applyResult{}
	var failed error
	for _, f := range files {
		data, err := readLimited(env, f)
		if err == nil {
			var res *applyResult
			if res, err = a.apply(ctx, f, data); err == nil {
				results = append(results, res)
				if c.output == "table" {
					fmt.Fprintln(env.Stdout, res.Summary)
					if res.Next != "" {
						fmt.Fprintf(env.Stdout, "  next: %s\n", res.Next)
					}
				}
				continue
			}
		}
		failed = fmt.Errorf("%s: %w", f, err)
		break
	}
	if c.output == "json" {
		out := map[string]any{"results": results}
		var ve *validationError
		if errors.As(failed, &ve) {
			out["problems"] = ve.problems
		}
		if err := writeJSON(env.Stdout, out); err != nil {
			return err
		}
	}
	return failed
}

func readLimited(env *Env, name string) ([]byte, error) {
	var r io.Reader = env.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open definition: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxApplyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxApplyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxApplyFile)
	}
	return data, nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
