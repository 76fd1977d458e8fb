package server_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/server"
)

type testConfig struct {
	Server server.Config
	Every  time.Duration
}

func parseTest(args []string, getenv func(string) string) (testConfig, error) {
	c := testConfig{Server: server.Config{Name: "stages"}}
	fs := flag.NewFlagSet("cairn-test", flag.ContinueOnError)
	c.Server.RegisterFlags(fs)
	fs.DurationVar(&c.Every, "every", time.Second, "pause")
	if err := server.ParseFlags(fs, args, getenv); err != nil {
		return c, err
	}
	if c.Every <= 0 {
		return c, errors.New("-every: must be positive")
	}
	return c, nil
}

func TestStart(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		runErr  error
		code    int
		stderr  string // substring; "" means empty
		every   time.Duration
		grpcSet string
	}{
		{name: "defaults", code: 0, every: time.Second, grpcSet: "127.0.0.1:7102"},
		{name: "flag", args: []string{"-every", "5s", "-grpc-addr", "127.0.0.1:0"}, code: 0, every: 5 * time.Second, grpcSet: "127.0.0.1:0"},
		{name: "env", env: map[string]string{"CAIRN_EVERY": "3s"}, code: 0, every: 3 * time.Second, grpcSet: "127.0.0.1:7102"},
		{name: "flag beats env", args: []string{"-every", "2s"}, env: map[string]string{"CAIRN_EVERY": "3s"}, code: 0, every: 2 * time.Second, grpcSet: "127.0.0.1:7102"},
		{name: "bad env names flag and variable", env: map[string]string{"CAIRN_EVERY": "soon"}, code: 2,
			stderr: `cairn-stages: invalid configuration: -every: environment CAIRN_EVERY="soon"`},
		{name: "bad flag", args: []string{"-every", "soon"}, code: 2, stderr: "cairn-stages: invalid configuration: invalid value \"soon\" for flag -every"},
		{name: "unknown flag", args: []string{"-evry", "1s"}, code: 2, stderr: "flag provided but not defined: -evry"},
		{name: "out of range", args: []string{"-every", "-1s"}, code: 2, stderr: "cairn-stages: invalid configuration: -every: must be positive"},
		{name: "run fails", runErr: errors.New("open store: locked"), code: 1, stderr: "cairn-stages: open store: locked", every: time.Second, grpcSet: "127.0.0.1:7102"},
		{name: "help", args: []string{"-h"}, code: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got testConfig
			ran := false
			var stderr bytes.Buffer
			code := server.Start(context.Background(), "stages", tc.args, func(k string) string { return tc.env[k] }, &stderr, parseTest,
				func(_ context.Context, c testConfig) error { ran, got = true, c; return tc.runErr })
			if code != tc.code {
				t.Fatalf("exit code = %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if tc.stderr == "" && stderr.Len() > 0 || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tc.stderr)
			}
			if ran != (tc.grpcSet != "") {
				t.Fatalf("run called = %v", ran)
			}
			if ran && (got.Every != tc.every || got.Server.GRPCAddr != tc.grpcSet) {
				t.Errorf("config = every %v grpc %q, want %v %q", got.Every, got.Server.GRPCAddr, tc.every, tc.grpcSet)
			}
		})
	}
}
