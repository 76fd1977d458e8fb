package server

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestRegisterFlags(t *testing.T) {
	tests := []struct {
		name  string
		base  Config
		env   map[string]string
		args  []string
		check func(t *testing.T, c Config)
		err   string // from Validate
	}{
		{
			name: "conventional defaults by name",
			base: Config{Name: "stages"},
			check: func(t *testing.T, c Config) {
				if c.GRPCAddr != "127.0.0.1:7102" || c.MetricsAddr != "127.0.0.1:9102" || c.DataDir != DefaultDataDir ||
					c.Partitions != DefaultPartitions || c.MaxRecvBytes != DefaultMaxRecvBytes || c.RequestTimeout != DefaultRequestTimeout ||
					c.DBPath() != "data/stages.db" || c.KeysPath() != "data/keys.json" {
					t.Fatalf("defaults: %+v", c)
				}
			},
		},
		{
			name: "environment overrides defaults",
			base: Config{Name: "ingestion"},
			env: map[string]string{"CAIRN_GRPC_ADDR": "0.0.0.0:9000", "CAIRN_PARTITIONS": "64", "CAIRN_SERVICE_KEY": "cairn_service_x",
				"CAIRN_DATA": "/var/lib/cairn", "CAIRN_REQUEST_TIMEOUT": "5s", "CAIRN_MAX_RECV_BYTES": "1048576"},
			check: func(t *testing.T, c Config) {
				if c.GRPCAddr != "0.0.0.0:9000" || c.Partitions != 64 || c.ServiceKey != "cairn_service_x" ||
					c.DBPath() != "/var/lib/cairn/ingestion.db" || c.RequestTimeout != 5*time.Second || c.MaxRecvBytes != 1<<20 {
					t.Fatalf("env: %+v", c)
				}
			},
		},
		{
			name: "flags override environment",
			base: Config{Name: "health"},
			env:  map[string]string{"CAIRN_GRPC_ADDR": "0.0.0.0:9000", "CAIRN_PARTITIONS": "64"},
			args: []string{"-grpc-addr", "127.0.0.1:7000", "-partitions", "16", "-keys", "/etc/cairn/keys.json", "-drain-delay", "3s"},
			check: func(t *testing.T, c Config) {
				if c.GRPCAddr != "127.0.0.1:7000" || c.Partitions != 16 || c.KeysPath() != "/etc/cairn/keys.json" || c.DrainDelay != 3*time.Second {
					t.Fatalf("flags: %+v", c)
				}
			},
		},
		{
			name: "caller defaults kept",
			base: Config{Name: "custom", GRPCAddr: "127.0.0.1:7555"},
			check: func(t *testing.T, c Config) {
				if c.GRPCAddr != "127.0.0.1:7555" || c.MetricsAddr != "" {
					t.Fatalf("caller defaults: %+v", c)
				}
			},
		},
		{
			name: "bad environment value named in Validate",
			base: Config{Name: "routing"},
			env:  map[string]string{"CAIRN_PARTITIONS": "many"},
			err:  `-partitions: environment CAIRN_PARTITIONS="many"`,
		},
		{
			name: "zero partitions from the environment",
			base: Config{Name: "routing"},
			env:  map[string]string{"CAIRN_PARTITIONS": "0"},
			err:  "-partitions: environment CAIRN_PARTITIONS=\"0\": want an integer from 1 to 4096",
		},
		{
			name: "too many partitions",
			base: Config{Name: "routing"},
			args: []string{"-partitions", "5000"},
			err:  "-partitions: 5000 is not between 1 and 4096",
		},
		{
			name: "bad metrics address",
			base: Config{Name: "routing"},
			args: []string{"-metrics-addr", "localhost"},
			err:  "-metrics-addr:",
		},
		{
			name: "unknown service needs an address",
			base: Config{Name: "custom"},
			err:  "-grpc-addr: empty",
		},
		{
			name: "tiny max recv",
			base: Config{Name: "routing"},
			args: []string{"-max-recv-bytes", "10"},
			err:  "-max-recv-bytes: 10",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c := tc.base
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("parse: %v", err)
			}
			err := c.Validate()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Validate = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tc.check(t, c)
		})
	}
}

// TestServiceKeyHiddenInHelp checks that -help does not print the key taken
// from the environment.
func TestServiceKeyHiddenInHelp(t *testing.T) {
	t.Setenv("CAIRN_SERVICE_KEY", "cairn_service_topsecret")
	c := Config{Name: "stages"}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	c.RegisterFlags(fs)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "topsecret") {
		t.Fatalf("help shows the service key:\n%s", out.String())
	}
	if c.ServiceKey != "cairn_service_topsecret" {
		t.Fatalf("ServiceKey = %q", c.ServiceKey)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"grpc-addr": "CAIRN_GRPC_ADDR", "data": "CAIRN_DATA", "service-key": "CAIRN_SERVICE_KEY"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateZeroDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{name: "zero durations and sizes take defaults", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:0"}},
		{name: "negative drain delay", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:0", DrainDelay: -time.Second}, err: "-drain-delay"},
		{name: "negative request timeout", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:0", RequestTimeout: -time.Second}, err: "-request-timeout"},
		{name: "no name", cfg: Config{GRPCAddr: "127.0.0.1:0"}, err: "service name is empty"},
		{name: "port out of range", cfg: Config{Name: "x", GRPCAddr: "127.0.0.1:70000"}, err: "port must be a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" && err != nil {
				t.Fatalf("Validate = %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestPartitionsFlagRejectsZero(t *testing.T) {
	c := Config{Name: "routing"}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-partitions", "0"}); err == nil || !strings.Contains(err.Error(), "want an integer from 1 to 4096") {
		t.Fatalf("Parse(-partitions 0) = %v", err)
	}
}
