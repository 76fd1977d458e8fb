package server

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// Flags is a process's flag set, built the same way in every service: the
// shared flags of a Config (when there is one), the service's own flags,
// its upstream addresses, and checks that run after parsing. Parse fills
// every flag from the command line or CAIRN_<FLAG>, and reports every bad
// value naming its flag, as an ErrConfig.
type Flags struct {
	*flag.FlagSet
	cfg    *Config
	checks []func() error
}

// NewFlags returns the flag set of the process cairn-<name>. With cfg it
// also registers the shared flags (Config.RegisterFlags) and checks them
// (Config.Validate) after parsing.
func NewFlags(name string, cfg *Config) *Flags {
	f := &Flags{FlagSet: flag.NewFlagSet("cairn-"+name, flag.ContinueOnError), cfg: cfg}
	if cfg != nil {
		cfg.RegisterFlags(f.FlagSet)
	}
	return f
}

// Upstream registers -<service>-addr: the gRPC address of an upstream
// service, or its replicas' addresses comma-separated in replica order,
// defaulting to the service's local address. A required upstream must not
// be empty; an optional one is skipped when empty, and CAIRN_<SERVICE>_ADDR
// set to the empty string empties it (the way a deployment turns a
// consumer off).
func (f *Flags) Upstream(p *string, service string, required bool) {
	name := service + "-addr"
	def := DefaultGRPCAddr(service)
	usage := service + " gRPC address, or its replicas' addresses comma-separated in replica order"
	if required {
		usage += " (required)"
		f.Check(func() error {
			if strings.TrimSpace(*p) == "" {
				return fmt.Errorf("-%s: required", name)
			}
			return nil
		})
	} else {
		usage += "; empty skips it"
		if v, ok := os.LookupEnv(EnvName(name)); ok && v == "" {
			def = ""
		}
	}
	f.StringVar(p, name, def, usage)
}

// Check adds a check that runs after parsing; its error should name the
// flag, e.g. "-timer-batch: 0 is less than 1".
func (f *Flags) Check(fn func() error) { f.checks = append(f.checks, fn) }

// Parse parses args and the environment (ParseFlags), then runs the checks.
// Every failure is reported, wrapped in ErrConfig; -h is flag.ErrHelp.
func (f *Flags) Parse(args []string, getenv func(string) string) error {
	f.VisitAll(func(fl *flag.Flag) {
		if env := EnvName(fl.Name); !strings.Contains(fl.Usage, env) {
			fl.Usage += " (env " + env + ")"
		}
	})
	if err := ParseFlags(f.FlagSet, args, getenv); err != nil {
		return err
	}
	var errs []error
	if f.cfg != nil {
		errs = append(errs, f.cfg.Validate())
	}
	for _, c := range f.checks {
		errs = append(errs, c())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
