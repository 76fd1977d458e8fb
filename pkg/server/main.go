package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ErrConfig marks a configuration error: a flag or environment value that
// does not parse or is out of range. Main exits 2 on it, as flag does.
var ErrConfig = errors.New("invalid configuration")

// Main is every service's main: it parses the command line and the
// environment into a configuration with parse, then runs run until SIGINT or
// SIGTERM. A configuration error exits 2 and a run error 1, both printed as
// "cairn-<name>: ..." on stderr, so bad configuration fails the same way in
// every process. -h prints the flags and exits 0.
func Main[C any](name string, parse func(args []string, getenv func(string) string) (C, error), run func(context.Context, C) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Start(ctx, name, os.Args[1:], os.Getenv, os.Stderr, parse, run)
	stop()
	os.Exit(code)
}

// Start is Main without the process: it returns the exit code. Tests call it.
func Start[C any](ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	parse func(args []string, getenv func(string) string) (C, error), run func(context.Context, C) error) int {
	cfg, err := parse(args, getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		if !errors.Is(err, ErrConfig) {
			err = fmt.Errorf("%w: %w", ErrConfig, err)
		}
		fmt.Fprintf(stderr, "cairn-%s: %v\n", name, err)
		return 2
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "cairn-%s: %v\n", name, err)
		return 1
	}
	return 0
}

// ParseFlags parses args into fs after giving every flag in fs that has an
// environment variable (EnvName) set its value from getenv, so that each
// flag can be set either way and the command line wins. Every bad value is
// reported, naming the flag and, for the environment, the variable. The
// flags registered by Config.RegisterFlags read the environment themselves;
// ParseFlags also reports their bad values (Config.Validate).
func ParseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("-%s: environment %s=%q: %w", f.Name, env, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
