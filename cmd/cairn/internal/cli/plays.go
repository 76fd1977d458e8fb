package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
)

// The commands of the plays service: its tasks, firings, deliveries and
// destinations, and the active plays file.

// pageFlags are the paging flags of the plays list commands: one page
// (the server's size unless --page-size), from --page-token, or --all.
type pageFlags struct {
	size  int
	token string
	all   bool
}

func addPageFlags(fs *flag.FlagSet, what string) *pageFlags {
	p := &pageFlags{}
	fs.IntVar(&p.size, "page-size", 0, what+" per page (default: the server's, 50; at most 1000)")
	fs.StringVar(&p.token, "page-token", "", "page token from a previous call (the \"more:\" line)")
	fs.BoolVar(&p.all, "all", false, "fetch every page (from --page-token, when given)")
	return p
}

func (p *pageFlags) check() error {
	if p.size < 0 || p.size > listPageSize {
		return usagef("--page-size must be between 1 and %d (leave it out for the server's default)", listPageSize)
	}
	return nil
}

// fetch calls get for one page, or with --all for every page, and returns
// the token of the page after the last one fetched ("" when there is none).
func (p *pageFlags) fetch(get func(page *commonv1.PageRequest) (next string, err error)) (string, error) {
	if !p.all {
		return get(pageRequest(p.size, p.token))
	}
	size := p.size
	if size == 0 {
		size = listPageSize
	}
	token := p.token
	for {
		next, err := get(pageRequest(size, token))
		if err != nil || next == "" {
			return "", err
		}
		token = next
	}
}

// printMore tells how to get the next page: after a table on stdout; on
// stderr for CSV, which must stay one table. JSON carries it in its page.
func printMore(env *Env, format, next string) {
	switch {
	case next == "":
	case format == "table":
		nextPage(env.Stdout, &commonv1.PageResponse{NextPageToken: next})
	case format == "csv":
		fmt.Fprintf(env.Stderr, "more: --page-token %s\n", next)
	}
}

// stateFlag turns a state word of a flag into its enum value: "open" is
// TASK_STATE_OPEN. "" is 0 (every state); an unknown word is a usage error
// that lists the words.
func stateFlag(flagName, word, prefix string, values map[string]int32, words []string) (int32, error) {
	if word == "" {
		return 0, nil
	}
	w := strings.ToLower(strings.TrimSpace(word))
	if contains(words, w) {
		if v, ok := values[prefix+upper(w)]; ok {
			return v, nil
		}
	}
	return 0, usagef("unknown --%s %q: want %s", flagName, word, orList(words))
}

var (
	taskStateWords     = []string{"open", "scheduled", "done", "skipped", "expired"}
	deliveryStateWords = []string{"pending", "delivered", "dead"}
)

const tasksUsage = `tasks [--account A] [--owner O] [--state open|scheduled|done|skipped|expired] [--page-size N] [--page-token T | --all] [-o table|json|csv]
       cairn tasks done|skip TASK_ID [--note TEXT]
       cairn tasks reopen TASK_ID [--note TEXT]`

// runTasks lists the plays service's tasks, or with a subcommand closes
// or reopens one.
func runTasks(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "done":
			return updateTask(ctx, env, "done", playsv1.TaskState_TASK_STATE_DONE, args[1:])
		case "skip":
			return updateTask(ctx, env, "skip", playsv1.TaskState_TASK_STATE_SKIPPED, args[1:])
		case "reopen":
			return updateTask(ctx, env, "reopen", playsv1.TaskState_TASK_STATE_OPEN, args[1:])
		}
		return usagef("unknown subcommand %q: want done, skip or reopen, or none to list tasks", args[0])
	}
	var account, owner, state string
	var pf *pageFlags
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "tasks", usage: tasksUsage, services: []string{"plays"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&account, "account", "", "only this account's tasks")
			fs.StringVar(&owner, "owner", "", "only this owner's tasks")
			fs.StringVar(&state, "state", "", "only tasks in this state: "+orList(taskStateWords)+" (default: every state)")
			pf = addPageFlags(fs, "tasks")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	st, err := stateFlag("state", state, "TASK_STATE_", playsv1.TaskState_value, taskStateWords)
	if err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	pc := playsv1.NewPlaysServiceClient(conn)
	resp := &playsv1.ListTasksResponse{}
	next, err := pf.fetch(func(page *commonv1.PageRequest) (string, error) {
		r, err := pc.ListTasks(ctx, &playsv1.ListTasksRequest{Workspace: c.workspace, AccountId: account, OwnerId: owner, State: playsv1.TaskState(st), Page: page})
		if err != nil {
			return "", err
		}
		resp.Tasks = append(resp.Tasks, r.GetTasks()...)
		return r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	if next != "" {
		resp.Page = &commonv1.PageResponse{NextPageToken: next}
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	g := &grid{header: []string{"TASK", "DUE", "STATE", "OWNER", "ACCOUNT", "TITLE", "PLAYBOOK STEP", "WHY"}}
	for _, k := range resp.GetTasks() {
		g.add(k.GetTaskId(), ts(k.GetDueAt()), enumName(k.GetState(), "TASK_STATE_"), taskOwner(k), dash(k.GetAccountId()), k.GetTitle(), taskStep(k), dash(k.GetWhy()))
	}
	if err := g.print(env.Stdout, c.output); err != nil {
		return err
	}
	printMore(env, c.output, next)
	return nil
}

// taskOwner is "alice (csm)": the owner and how the play asked for them;
// "- (pool:leads)" while nobody is resolved.
func taskOwner(k *playsv1.Task) string {
	id, role := k.GetOwnerId(), k.GetOwnerRole()
	switch {
	case role == "" || role == "owner:"+id:
		return dash(id)
	default:
		return dash(id) + " (" + role + ")"
	}
}

// taskStep is "renewal step 2" for a playbook's task, "-" for a play's own.
func taskStep(k *playsv1.Task) string {
	if k.GetPlaybookId() == "" {
		return "-"
	}
	return fmt.Sprintf("%s step %d", k.GetPlaybookId(), k.GetStep())
}

// updateTask is `cairn tasks done|skip|reopen TASK_ID`.
func updateTask(ctx context.Context, env *Env, verb string, state playsv1.TaskState, args []string) error {
	var note string
	c, pos, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "tasks " + verb, usage: "tasks " + verb + " TASK_ID [--note TEXT] [-o table|json]", services: []string{"plays"}, npos: 1,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&note, "note", "", "a note kept with the task (at most 2000 bytes)")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := playsv1.NewPlaysServiceClient(conn).UpdateTask(ctx, &playsv1.UpdateTaskRequest{Workspace: c.workspace, TaskId: pos[0], State: state, Note: note})
	if err != nil {
		return fmt.Errorf("%s task %q: %w", verb, pos[0], err)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	k := resp.GetTask()
	fmt.Fprintf(env.Stdout, "task %s is %s: %s (account %s, owner %s, due %s)\n", k.GetTaskId(), enumName(k.GetState(), "TASK_STATE_"), k.GetTitle(), dash(k.GetAccountId()), taskOwner(k), ts(k.GetDueAt()))
	return nil
}

const deliveriesUsage = `deliveries [--destination D] [--account A] [--state pending|delivered|dead] [--page-size N] [--page-token T | --all] [-o table|json|csv]
       cairn deliveries redeliver (DELIVERY_ID... | --destination D)`

// runDeliveries lists the delivery log, or with redeliver queues dead
// deliveries again.
func runDeliveries(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if args[0] == "redeliver" {
			return redeliver(ctx, env, args[1:])
		}
		return usagef("unknown subcommand %q: want redeliver, or none to list deliveries", args[0])
	}
	var destination, account, state string
	var pf *pageFlags
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "deliveries", usage: deliveriesUsage, services: []string{"plays"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&destination, "destination", "", "only this destination's deliveries")
			fs.StringVar(&account, "account", "", "only this account's deliveries")
			fs.StringVar(&state, "state", "", "only deliveries in this state: "+orList(deliveryStateWords)+" (dead: the dead-letter list; default: every state)")
			pf = addPageFlags(fs, "deliveries")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	st, err := stateFlag("state", state, "DELIVERY_STATE_", playsv1.DeliveryState_value, deliveryStateWords)
	if err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	pc := playsv1.NewPlaysServiceClient(conn)
	resp := &playsv1.ListDeliveriesResponse{}
	next, err := pf.fetch(func(page *commonv1.PageRequest) (string, error) {
		r, err := pc.ListDeliveries(ctx, &playsv1.ListDeliveriesRequest{Workspace: c.workspace, DestinationId: destination, AccountId: account, State: playsv1.DeliveryState(st), Page: page})
		if err != nil {
			return "", err
		}
		resp.Deliveries = append(resp.Deliveries, r.GetDeliveries()...)
		return r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	if next != "" {
		resp.Page = &commonv1.PageResponse{NextPageToken: next}
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	g := &grid{header: []string{"DELIVERY", "CREATED", "DESTINATION", "ACTION", "ACCOUNT", "PLAY", "STATE", "ATTEMPTS", "LAST", "LATENCY", "NEXT ATTEMPT", "LAST ERROR"}}
	for _, d := range resp.GetDeliveries() {
		g.add(d.GetDeliveryId(), ts(d.GetCreatedAt()), d.GetDestinationId(), d.GetAction(), dash(d.GetAccountId()), dash(d.GetPlayId()),
			enumName(d.GetState(), "DELIVERY_STATE_"), d.GetAttempts(), httpStatus(d.GetLastStatus()), latency(d.GetLastLatency()), ts(d.GetNextAttemptAt()), dash(d.GetLastError()))
	}
	if err := g.print(env.Stdout, c.output); err != nil {
		return err
	}
	printMore(env, c.output, next)
	return nil
}

// redeliver is `cairn deliveries redeliver`.
func redeliver(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "deliveries redeliver", "deliveries redeliver (DELIVERY_ID... | --destination D) [-o table|json]")
	c := addConnFlags(fs, env, []string{"plays"})
	destination := fs.String("destination", "", "queue every dead delivery of this destination again")
	ids, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(ids) == 0 && *destination == "":
		return usagef("name the dead deliveries to queue again, or --destination D for all of a destination's")
	case len(ids) > 0 && *destination != "":
		return usagef("give delivery ids or --destination, not both")
	}
	if err := c.resolve(fs); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := playsv1.NewPlaysServiceClient(conn).Redeliver(ctx, &playsv1.RedeliverRequest{Workspace: c.workspace, DeliveryIds: ids, DestinationId: *destination})
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	if *destination != "" {
		fmt.Fprintf(env.Stdout, "queued %s of %s again, with their original webhook-id\n", plural(int(resp.GetQueued()), "dead delivery"), *destination)
		return nil
	}
	fmt.Fprintf(env.Stdout, "queued %d of the %s named again, with their original webhook-id\n", resp.GetQueued(), plural(len(ids), "delivery"))
	return nil
}

// runDestinations shows each destination's queue, breaker and figures.
func runDestinations(ctx context.Context, env *Env, args []string) error {
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "destinations", usage: "destinations [-o table|json|csv]", services: []string{"plays"}, formats: formatsWithCSV,
	})
	if err != nil {
		return err
	}
	defer cancel()
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := playsv1.NewPlaysServiceClient(conn).ListDestinations(ctx, &playsv1.ListDestinationsRequest{Workspace: c.workspace})
	if err != nil {
		return fmt.Errorf("list destinations: %w", err)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	g := &grid{header: []string{"DESTINATION", "TYPE", "QUEUE", "IN FLIGHT", "DELIVERED", "FAILED ATTEMPTS", "DEAD", "BREAKER", "P50", "P99", "LAST ERROR"}}
	for _, s := range resp.GetDestinations() {
		d := s.GetDestination()
		// The error names its HTTP status ("HTTP 503: ...") when there was one.
		g.add(d.GetDestinationId(), dash(d.GetType()), s.GetPending(), s.GetInFlight(), s.GetDelivered(), s.GetFailedAttempts(), s.GetDead(),
			dash(s.GetBreaker()), latency(s.GetLatencyP50()), latency(s.GetLatencyP99()), dash(s.GetLastError()))
	}
	return g.print(env.Stdout, c.output)
}

// runPlays shows the active plays version, or with --yaml its file; with
// replay it replays plays over the history.
func runPlays(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && args[0] == "replay" {
		return replayPlays(ctx, env, args[1:])
	}
	var yamlOut bool
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "plays", usage: "plays [--yaml] [-o table|json]", services: []string{"plays"},
		extra: func(fs *flag.FlagSet) {
			fs.BoolVar(&yamlOut, "yaml", false, "print the active plays file as applied, its secrets redacted")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	if yamlOut && c.output != "table" {
		return usagef("--yaml prints the file: leave out -o")
	}
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := playsv1.NewPlaysServiceClient(conn).GetPlays(ctx, &playsv1.GetPlaysRequest{Workspace: c.workspace})
	if err != nil {
		return fmt.Errorf("get plays: %w", err)
	}
	if yamlOut {
		y := resp.GetYaml()
		if y != "" && !strings.HasSuffix(y, "\n") {
			y += "\n"
		}
		_, err := fmt.Fprint(env.Stdout, y)
		return err
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	v := resp.GetPlays()
	w := env.Stdout
	fmt.Fprintf(w, "Plays version %d, applied %s, live\n", v.GetVersion(), ts(v.GetAppliedAt()))
	fmt.Fprintf(w, "Playbooks: %s\n\n", dash(strings.Join(v.GetPlaybooks(), ", ")))
	t := newTable(w, "PLAY", "ON", "WHEN", "CONDITIONS", "COOLDOWN", "ACTIONS")
	for _, p := range v.GetPlays() {
		cooldown := "-"
		if p.GetCooldown() != nil {
			cooldown = human(p.GetCooldown().AsDuration())
		}
		t.row(p.GetPlayId(), strings.Join(p.GetOn(), ","), dash(p.GetWhen()), dash(p.GetConditions()), cooldown, dash(strings.Join(p.GetActions(), "; ")))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(v.GetDestinations()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w, "DESTINATION", "TYPE", "URL", "SIGNED", "CONCURRENCY")
	for _, d := range v.GetDestinations() {
		conc := "default"
		if d.GetConcurrency() > 0 {
			conc = fmt.Sprint(d.GetConcurrency())
		}
		t.row(d.GetDestinationId(), d.GetType(), d.GetUrl(), yesNo(d.GetSigned()), conc)
	}
	return t.flush()
}

// replayPoll is how often `plays replay` asks how a replay is doing.
const replayPollPlays = 500 * time.Millisecond

// replayPlays starts a replay of plays over the history and waits for it.
func replayPlays(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "plays replay", "plays replay --play ID [--play ID...] [--since YYYY-MM-DD|RFC3339] [--wait=false] [-o table|json]")
	c := addConnFlags(fs, env, []string{"plays"})
	var ids multiFlag
	fs.Var(&ids, "play", "a play of the active plays file to replay (repeatable)")
	since := fs.String("since", "", "replay records from this date or time on (default: the whole history)")
	wait := fs.Bool("wait", true, "wait for the replay and show its progress")
	timeout := fs.Duration("replay-timeout", 30*time.Minute, "with --wait, how long to wait")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q: name plays with --play", pos[0])
	}
	if len(ids) == 0 {
		return usagef("name the plays to replay with --play ID; cairn plays lists them")
	}
	req := &playsv1.StartReplayRequest{PlayIds: ids}
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			if t, err = time.Parse("2006-01-02", *since); err != nil {
				return usagef("--since %q: want YYYY-MM-DD or an RFC 3339 time", *since)
			}
		}
		req.Since = timestamppb.New(t)
	}
	if err := c.resolve(fs); err != nil {
		return err
	}
	req.Workspace = c.workspace
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	client := playsv1.NewPlaysServiceClient(conn)
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	resp, err := client.StartReplay(cctx, req)
	cancel()
	if err != nil {
		return fmt.Errorf("start replay: %w", err)
	}
	r := resp.GetReplay()
	clk := env.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	deadline := clk.After(*timeout)
	for *wait && r.GetState() == playsv1.ReplayState_REPLAY_STATE_RUNNING {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("replay %s still running after %s (--replay-timeout); see how it does with GET /v1/plays/replays/%s", r.GetReplayId(), *timeout, r.GetReplayId())
		case <-clk.After(replayPollPlays):
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		got, err := client.GetReplay(cctx, &playsv1.GetReplayRequest{Workspace: c.workspace, ReplayId: r.GetReplayId()})
		cancel()
		if err != nil {
			return fmt.Errorf("replay %s: %w", r.GetReplayId(), err)
		}
		r = got.GetReplay()
		if r.GetState() == playsv1.ReplayState_REPLAY_STATE_RUNNING {
			fmt.Fprintf(env.Stderr, "replay %s: %d of %d records, %d fired\n", r.GetReplayId(), r.GetRecordsRead(), r.GetRecordsTotal(), r.GetFired())
		}
	}
	if c.output == "json" {
		return c.printJSON(r)
	}
	switch r.GetState() {
	case playsv1.ReplayState_REPLAY_STATE_FAILED:
		return fmt.Errorf("replay %s failed: %s", r.GetReplayId(), r.GetError())
	case playsv1.ReplayState_REPLAY_STATE_RUNNING:
		fmt.Fprintf(env.Stdout, "replay %s of %s started\n", r.GetReplayId(), strings.Join(ids, ", "))
		return nil
	}
	fmt.Fprintf(env.Stdout, "replay %s of %s done: %d records read, %d firings, %d triggers already fired before (not sent again)\n",
		r.GetReplayId(), strings.Join(ids, ", "), r.GetRecordsRead(), r.GetFired(), r.GetAlreadyFired())
	return nil
}

// runFirings lists the plays that fired, newest first.
func runFirings(ctx context.Context, env *Env, args []string) error {
	var account, playID string
	var pf *pageFlags
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name: "firings", usage: "firings [--account A] [--play P] [--page-size N] [--page-token T | --all] [-o table|json|csv]", services: []string{"plays"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&account, "account", "", "only this account's firings")
			fs.StringVar(&playID, "play", "", "only this play's firings")
			pf = addPageFlags(fs, "firings")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	if err := pf.check(); err != nil {
		return err
	}
	conn, err := c.dial("plays")
	if err != nil {
		return err
	}
	defer conn.Close()
	pc := playsv1.NewPlaysServiceClient(conn)
	resp := &playsv1.ListFiringsResponse{}
	next, err := pf.fetch(func(page *commonv1.PageRequest) (string, error) {
		r, err := pc.ListFirings(ctx, &playsv1.ListFiringsRequest{Workspace: c.workspace, AccountId: account, PlayId: playID, Page: page})
		if err != nil {
			return "", err
		}
		resp.Firings = append(resp.Firings, r.GetFirings()...)
		return r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list firings: %w", err)
	}
	if next != "" {
		resp.Page = &commonv1.PageResponse{NextPageToken: next}
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	g := &grid{header: []string{"FIRING", "AT", "PLAY", "VERSION", "ACCOUNT", "TRIGGER", "RESULT", "RECORD"}}
	for _, f := range resp.GetFirings() {
		g.add(f.GetFiringId(), ts(f.GetAt()), f.GetPlayId(), f.GetPlaysVersion(), dash(f.GetAccountId()), f.GetTrigger(), firingResult(f), dash(f.GetRecord()))
	}
	if err := g.print(env.Stdout, c.output); err != nil {
		return err
	}
	printMore(env, c.output, next)
	return nil
}

// firingResult is what a firing did: "2 tasks, 1 delivery", or why it was held.
func firingResult(f *playsv1.Firing) string {
	if f.GetHeld() != "" {
		return "held: " + f.GetHeld()
	}
	var parts []string
	if n := len(f.GetTaskIds()); n > 0 {
		parts = append(parts, plural(n, "task"))
	}
	if n := len(f.GetDeliveryIds()); n > 0 {
		parts = append(parts, plural(n, "delivery"))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// latency formats a delivery's latency: milliseconds below a second.
func latency(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	v := d.AsDuration()
	if v < time.Second {
		return fmt.Sprintf("%dms", v.Milliseconds())
	}
	return v.Round(10 * time.Millisecond).String()
}

// httpStatus is a delivery's last HTTP status, "-" before any answer.
func httpStatus(code int32) string {
	if code == 0 {
		return "-"
	}
	return fmt.Sprint(code)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
