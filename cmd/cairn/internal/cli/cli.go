// Package cli implements the `cairn` command line: the `run` supervisor, the
// demo generator, and commands that talk gRPC to the services and print human
// tables or, with -o json, protojson for scripts.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// Env is what a command sees of the outside world; tests substitute it.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads environment variables (os.Getenv in main).
	Getenv func(string) string
	// IsTTY reports whether Stderr is a terminal, to draw progress bars.
	IsTTY bool
	// Clock paces `cairn run`'s restarts of children that died; nil means
	// the real clock. Tests use a manual one.
	Clock clock.Clock
}

// command is one `cairn <name>` subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// hiddenCommands are left out of the usage: cairn run starts them, people
// do not.
var hiddenCommands = map[string]bool{"nats-node": true}

func commands() map[string]command {
	return map[string]command{
		"run":          {"start the whole suite on localhost (what make run does)", runSuite},
		"demo":         {"write the demo workspace as Segment NDJSON", runDemo},
		"ingest":       {"send a Segment NDJSON file to ingestion", runIngest},
		"accounts":     {"list accounts with stage, status, owner and health; filter by stage, band, status, owner, renewal window", runAccounts},
		"account":      {"show one account: stage, criteria met and missing, health and why, owner, open handoffs", runAccount},
		"owners":       {"list owners with their team, capacity and open load", runOwners},
		"journey":      {"show an account's journey stage, history and what's left", runJourney},
		"funnel":       {"show the journey funnel", runFunnel},
		"health":       {"show an account's health score and its explanation", runHealth},
		"signals":      {"list risk, expansion, renewal, drop-off and stuck signals", runSignals},
		"assignments":  {"list routing assignments and their SLA state", runAssignments},
		"apply":        {"apply a journey, health model, routing or plays YAML file (--activate places existing accounts)", runApply},
		"plays":        {"show the active plays: triggers and actions (--yaml: the file, secrets redacted)", runPlays},
		"tasks":        {"list the tasks plays made for owners; tasks done|skip|reopen TASK_ID", runTasks},
		"firings":      {"list the plays that fired, what triggered them and what they did", runFirings},
		"deliveries":   {"list webhook and Slack deliveries (--state dead: dead letters); deliveries redeliver", runDeliveries},
		"destinations": {"show each webhook and Slack destination's queue, breaker, failures and latency", runDestinations},
		"keys":         {"manage API keys: keys create|list|revoke", runKeys},
		"backtest":     {"measure how well the health model predicted churn", runBacktest},
		"status":       {"show how many events the services are still processing (stages, health, routing)", runStatus},
		"version":      {"print the version of this binary", runVersion},
		"nats-node":    {"run one NATS JetStream node (started by cairn run --cluster)", runNATSNode},
	}
}

// usageError is a mistake on the command line; Main prints usage for it and
// exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main runs the command line and returns the process exit status.
func Main(ctx context.Context, args []string, env *Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.Stdout, cmds)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "cairn: unknown command %q\n\n", args[0])
		printUsage(env.Stderr, cmds)
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	if err == nil {
		return 0
	}
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "cairn %s: %s (see cairn %s -h)\n", args[0], ue.msg, args[0])
		return 2
	}
	fmt.Fprintf(env.Stderr, "cairn %s: %s\n", args[0], describe(err))
	return 1
}

// describe renders an error for people: a gRPC status becomes "code: message"
// rather than Go's "rpc error: code = ... desc = ...".
func describe(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		s := se.GRPCStatus()
		msg := s.Message()
		prefix := strings.TrimSuffix(err.Error(), "rpc error: code = "+s.Code().String()+" desc = "+msg)
		return prefix + s.Code().String() + ": " + msg
	}
	return err.Error()
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "cairn — the Cairn customer-journey suite from the command line")
	fmt.Fprintln(w, "\nUsage: cairn <command> [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		if !hiddenCommands[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nCommands that call the services find addresses and an API key in <data>/run.json")
	fmt.Fprintln(w, "(written by cairn run; --data defaults to ./data) unless --addr-<service>, --key or")
	fmt.Fprintln(w, "CAIRN_KEY say otherwise. cairn <command> -h lists a command's flags.")
}

// parse parses flags that may appear before, between or after positional
// arguments (`cairn journey acme -o json`), and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// hidden holds, per flag set, flags that are accepted but left out of its
// help (the address flags of services a command does not call).
var hidden sync.Map // *flag.FlagSet -> map[string]bool

func hideFlags(fs *flag.FlagSet, names ...string) {
	m, _ := hidden.LoadOrStore(fs, map[string]bool{})
	for _, n := range names {
		m.(map[string]bool)[n] = true
	}
}

// helpFlagSet returns a flag set whose -h prints its usage and the flags it
// shows to env.Stdout.
func helpFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: cairn %s\n", usage)
		shown := flag.NewFlagSet(name, flag.ContinueOnError)
		m, _ := hidden.Load(fs)
		hide, _ := m.(map[string]bool)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			if hide[f.Name] {
				return
			}
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
			n++
		})
		if n > 0 {
			fmt.Fprintln(env.Stdout, "\nFlags:")
			shown.SetOutput(env.Stdout)
			shown.PrintDefaults()
		}
	}
	return fs
}

// OSEnv is the Env of a real process.
func OSEnv() *Env {
	tty := false
	if fi, err := os.Stderr.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, IsTTY: tty}
}
