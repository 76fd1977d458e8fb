package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

const assignmentsUsage = `assignments [--owner O] [--state open|touched|paused|breached|closed|unassigned] [--type mql|pql|sql|closed_won|renewal|risk|manual] [--account A] [--queue] [--limit N] [-o table|json|csv]
       cairn assignments reassign ASSIGNMENT_ID --owner O [--reason TEXT]
       cairn assignments pause ASSIGNMENT_ID [--reason TEXT]
       cairn assignments resume ASSIGNMENT_ID`

// assignmentAction is `cairn assignments reassign|pause|resume ID`: the
// routing actions on one assignment (reassign needs an admin key, pause
// and resume a write key).
func assignmentAction(ctx context.Context, env *Env, verb string, args []string) error {
	var owner, reason string
	var usage string
	switch verb {
	case "reassign":
		usage = "assignments reassign ASSIGNMENT_ID --owner O [--reason TEXT] [-o table|json]"
	case "pause":
		usage = "assignments pause ASSIGNMENT_ID [--reason TEXT] [-o table|json]"
	case "resume":
		usage = "assignments resume ASSIGNMENT_ID [-o table|json]"
	default:
		return usagef("unknown subcommand %q: want reassign, pause or resume, or none to list assignments", verb)
	}
	c, pos, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "assignments " + verb, usage: usage, services: []string{"routing"}, npos: 1,
		extra: func(fs *flag.FlagSet) {
			if verb == "reassign" {
				fs.StringVar(&owner, "owner", "", "the new owner's id (required)")
			}
			switch verb {
			case "reassign":
				fs.StringVar(&reason, "reason", "", "why, kept with the reassignment")
			case "pause":
				fs.StringVar(&reason, "reason", "", "why, kept as the assignment's reason")
			}
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	if verb == "reassign" && strings.TrimSpace(owner) == "" {
		return usagef("--owner is required: usage: cairn %s", usage)
	}
	conn, err := c.dial("routing")
	if err != nil {
		return err
	}
	defer conn.Close()
	rc := routingv1.NewRoutingServiceClient(conn)
	id := pos[0]
	var a *routingv1.Assignment
	var resp proto.Message
	switch verb {
	case "reassign":
		r, err := rc.Reassign(ctx, &routingv1.ReassignRequest{Workspace: c.workspace, AssignmentId: id, OwnerId: owner, Reason: reason})
		if err != nil {
			return fmt.Errorf("reassign assignment %q: %w", id, err)
		}
		a, resp = r.GetAssignment(), r
	case "pause":
		r, err := rc.PauseSla(ctx, &routingv1.PauseSlaRequest{Workspace: c.workspace, AssignmentId: id, Reason: reason})
		if err != nil {
			return fmt.Errorf("pause assignment %q: %w", id, err)
		}
		a, resp = r.GetAssignment(), r
	case "resume":
		r, err := rc.ResumeSla(ctx, &routingv1.ResumeSlaRequest{Workspace: c.workspace, AssignmentId: id})
		if err != nil {
			return fmt.Errorf("resume assignment %q: %w", id, err)
		}
		a, resp = r.GetAssignment(), r
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	fmt.Fprintf(env.Stdout, "assignment %s is %s, owned by %s", a.GetAssignmentId(), enumName(a.GetState(), "ASSIGNMENT_STATE_"), dash(a.GetOwnerId()))
	if prev := a.GetPreviousOwnerIds(); verb == "reassign" && len(prev) > 0 {
		fmt.Fprintf(env.Stdout, " (was %s)", prev[len(prev)-1])
	}
	if due := a.GetSla().GetDueAt(); due != nil && !a.GetSla().GetPaused() {
		fmt.Fprintf(env.Stdout, ", SLA due %s", ts(due))
	}
	fmt.Fprintln(env.Stdout)
	return nil
}
