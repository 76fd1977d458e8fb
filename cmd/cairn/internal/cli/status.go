package cli

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
)

// statusRow is one service's backlog, as `cairn status` prints it.
type statusRow struct {
	Service  string `json:"service"`
	Behind   uint64 `json:"behind"`
	CaughtUp bool   `json:"caughtUp"`
	// Storage says what is wrong with writing the service's store.
	Storage string `json:"storage,omitempty"`
}

// runStatus shows how far behind the services that consume logs are: the
// same figures as the dashboard's "Processing: N events behind" banner
// (GetStatus on stages, health, routing and, when the suite runs it, plays).
func runStatus(ctx context.Context, env *Env, args []string) error {
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name:     "status",
		usage:    "status [-o table|json|csv]",
		services: []string{"stages", "health", "routing", "plays"}, formats: formatsWithCSV,
	})
	if err != nil {
		return err
	}
	defer cancel()
	// Stages and health split accounts by partition, so each replica has
	// its own backlog: ask every one and add them up, as the gateway does.
	// Every routing replica reads every record, so one answers for all.
	every := func(service string, get func(*grpc.ClientConn) (*commonv1.Backlog, error)) func() (*commonv1.Backlog, error) {
		return func() (*commonv1.Backlog, error) {
			conns, closeAll, err := c.dialEvery(service)
			if err != nil {
				return nil, err
			}
			defer closeAll()
			sum := &commonv1.Backlog{CaughtUp: true}
			for _, cc := range conns {
				b, err := get(cc)
				if err != nil {
					return nil, err
				}
				pkgserver.MergeBacklog(sum, b)
			}
			return sum, nil
		}
	}
	calls := []struct {
		service string
		get     func() (*commonv1.Backlog, error)
	}{
		{"stages", every("stages", func(cc *grpc.ClientConn) (*commonv1.Backlog, error) {
			r, err := stagesv1.NewStagesServiceClient(cc).GetStatus(ctx, &stagesv1.GetStatusRequest{Workspace: c.workspace})
			return r.GetBacklog(), err
		})},
		{"health", every("health", func(cc *grpc.ClientConn) (*commonv1.Backlog, error) {
			r, err := healthv1.NewHealthServiceClient(cc).GetStatus(ctx, &healthv1.GetStatusRequest{Workspace: c.workspace})
			return r.GetBacklog(), err
		})},
		{"routing", func() (*commonv1.Backlog, error) {
			conn, err := c.dial("routing")
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			r, err := routingv1.NewRoutingServiceClient(conn).GetStatus(ctx, &routingv1.GetStatusRequest{Workspace: c.workspace})
			return r.GetBacklog(), err
		}},
	}
	// Plays is asked when the suite runs it: run.json lists it, or there
	// is no run.json to say (a deployment, with --addr-plays).
	ri, _ := ReadRunInfo(c.data)
	withPlays := ri == nil || ri.GRPC["plays"] != ""
	if withPlays {
		calls = append(calls, struct {
			service string
			get     func() (*commonv1.Backlog, error)
		}{"plays", func() (*commonv1.Backlog, error) {
			conn, err := c.dial("plays")
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			r, err := playsv1.NewPlaysServiceClient(conn).GetStatus(ctx, &playsv1.GetStatusRequest{Workspace: c.workspace})
			return r.GetBacklog(), err
		}})
	}
	rows := make([]statusRow, 0, len(calls))
	var names []string
	var backlogs []*commonv1.Backlog
	for _, call := range calls {
		b, err := call.get()
		if err != nil && call.service == "plays" && ri == nil {
			continue // no run.json and no plays service answering: a suite without plays
		}
		if err != nil {
			return fmt.Errorf("%s status: %w", call.service, err)
		}
		rows = append(rows, statusRow{Service: call.service, Behind: b.GetLag(), CaughtUp: b.GetCaughtUp(), Storage: b.GetStorage()})
		names, backlogs = append(names, call.service), append(backlogs, b)
	}
	// The total counts each record once, however many services have still
	// to read it, as the dashboard's banner does (pkg/server.SumBacklogs);
	// the services' own figures may add up to more.
	total := pkgserver.SumBacklogs(names, backlogs)
	if c.output == "json" {
		return writeJSON(env.Stdout, map[string]any{"behind": total.Behind, "events": total.Events, "updates": total.Updates,
			"caughtUp": total.CaughtUp, "services": rows})
	}
	g := &grid{header: []string{"SERVICE", "BEHIND", "STATE"}}
	for _, r := range rows {
		state := "processing"
		if r.CaughtUp {
			state = "caught up"
		}
		if r.Storage != "" {
			state += "; " + r.Storage
		}
		g.add(r.Service, r.Behind, state)
	}
	state := "processing"
	if total.CaughtUp {
		state = "caught up"
	}
	g.add("all (each record once)", total.Behind, fmt.Sprintf("%s; %d events and %d updates behind", state, total.Events, total.Updates))
	return g.print(env.Stdout, c.output)
}
