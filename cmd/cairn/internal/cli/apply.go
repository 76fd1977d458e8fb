package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
	routingconfig "github.com/cairn-dev/cairn/services/routing/config"
	"google.golang.org/grpc"
	"gopkg.in/yaml.v3"
)

// Kinds of file `cairn apply` accepts.
const (
	KindJourney = "journey"
	KindHealth  = "health"
	KindRouting = "routing"
)

// maxApplyFile bounds a definition file; the services enforce their own limits.
const maxApplyFile = 1 << 20

var kindAliases = map[string]string{
	"journey": KindJourney, "journeys": KindJourney, "journeydefinition": KindJourney,
	"health": KindHealth, "healthmodel": KindHealth, "health_model": KindHealth, "model": KindHealth,
	"routing": KindRouting, "routingconfig": KindRouting, "routing_config": KindRouting,
}

// Top-level keys that give a file's kind away when it has no `kind:`.
var kindKeys = map[string]string{
	"stages": KindJourney, "features": KindJourney, "integration_events": KindJourney, "activity_events": KindJourney,
	"components": KindHealth, "bands": KindHealth, "profiles": KindHealth,
	"rules": KindRouting, "owners": KindRouting, "pools": KindRouting, "pql_rules": KindRouting, "sla_policies": KindRouting, "fallback_pool": KindRouting,
}

// DetectKind decides what a YAML file defines, from a top-level `kind:` field
// or else from its keys, and returns the document without the `kind:` field
// (the services' strict parsers do not know it). A file with a second YAML
// document, or a number that is NaN, infinite or out of range, is refused
// naming the line (and the field).
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
				return "", nil, fmt.Errorf("kind: %q is not one of journey, health, routing", val.Value)
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
	return "", nil, errors.New("cannot tell whether this is a journey, health model or routing file: add a top-level `kind: journey|health|routing`")
}

// applier applies definitions to the services over existing connections.
type applier struct {
	workspace string
	activate  bool
	stages    stagesv1.StagesServiceClient
	health    healthv1.HealthServiceClient
	routing   routingv1.RoutingServiceClient
}

func newApplier(workspace string, activate bool, stages, health, routing grpc.ClientConnInterface) *applier {
	return &applier{
		workspace: workspace, activate: activate,
		stages: stagesv1.NewStagesServiceClient(stages), health: healthv1.NewHealthServiceClient(health), routing: routingv1.NewRoutingServiceClient(routing),
	}
}

// validationError carries the services' per-path problems.
type validationError struct {
	what     string
	problems []*commonv1.ValidationError
}

func (e *validationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is invalid:", e.what)
	for _, p := range e.problems {
		fmt.Fprintf(&b, "\n  %s: %s", dash(p.GetPath()), p.GetMessage())
	}
	return b.String()
}

// apply applies one file and writes a one-line result per change to w.
func (a *applier) apply(ctx context.Context, w io.Writer, data []byte) error {
	kind, body, err := DetectKind(data)
	if err != nil {
		return err
	}
	switch kind {
	case KindJourney:
		resp, err := a.stages.ApplyJourney(ctx, &stagesv1.ApplyJourneyRequest{Workspace: a.workspace, Yaml: string(body), Activate: a.activate})
		if err != nil {
			return fmt.Errorf("apply journey: %w", err)
		}
		d := resp.GetDefinition()
		fmt.Fprintf(w, "journey %s version %d applied (%d stages, active: %t)\n", d.GetId(), d.GetVersion(), len(d.GetStages()), resp.GetActive())
	case KindHealth:
		resp, err := a.health.ApplyModel(ctx, &healthv1.ApplyModelRequest{Workspace: a.workspace, Yaml: string(body), Activate: a.activate})
		if err != nil {
			return fmt.Errorf("apply health model: %w", err)
		}
		m := resp.GetModel()
		fmt.Fprintf(w, "health model %s version %d applied (%d components, active: %t)\n", m.GetId(), m.GetVersion(), len(m.GetComponents()), resp.GetActive())
	case KindRouting:
		cfg, owners, pools, err := routingconfig.Parse(body)
		if err != nil {
			var ce *routingconfig.Error
			if errors.As(err, &ce) {
				return &validationError{what: "routing file", problems: ce.Problems}
			}
			return fmt.Errorf("parse routing file: %w", err)
		}
		// Owners and pools go first: the config's rules refer to them, and
		// the service checks those references when the config is applied.
		for _, o := range owners {
			if _, err := a.routing.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Workspace: a.workspace, Owner: o}); err != nil {
				return fmt.Errorf("upsert owner %q: %w", o.GetOwnerId(), err)
			}
		}
		for _, p := range pools {
			if _, err := a.routing.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Workspace: a.workspace, Pool: p}); err != nil {
				return fmt.Errorf("upsert pool %q: %w", p.GetPoolId(), err)
			}
		}
		resp, err := a.routing.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Workspace: a.workspace, Config: cfg})
		if err != nil {
			return fmt.Errorf("apply routing config: %w", err)
		}
		c := resp.GetConfig()
		fmt.Fprintf(w, "routing: %d owners and %d pools upserted; config version %d applied (%d rules, %d PQL rules, %d SLA policies)\n",
			len(owners), len(pools), c.GetVersion(), len(c.GetRules()), len(c.GetPqlRules()), len(c.GetSlaPolicies()))
	}
	return nil
}

func runApply(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "apply", "apply -f FILE.yaml [-f ...] [--activate=true]")
	c := addConnFlags(fs, env)
	var files multiFlag
	fs.Var(&files, "f", "journey, health model or routing YAML file (repeatable; - for stdin)")
	activate := fs.Bool("activate", true, "activate new journey and health model versions at once")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	files = append(files, pos...)
	if len(files) == 0 {
		return usagef("name a file with -f")
	}
	if err := c.resolve(fs); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conns := map[string]*grpc.ClientConn{}
	for _, s := range []string{"stages", "health", "routing"} {
		conn, err := c.dial(s)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[s] = conn
	}
	a := newApplier(c.workspace, *activate, conns["stages"], conns["health"], conns["routing"])
	for _, f := range files {
		data, err := readLimited(env, f)
		if err != nil {
			return err
		}
		if err := a.apply(ctx, env.Stdout, data); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
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
