package app

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/server"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestParseDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr: "127.0.0.1:8080", MetricsAddr: "127.0.0.1:9105",
		IngestionAddr: "127.0.0.1:7101", StagesAddr: "127.0.0.1:7102", HealthAddr: "127.0.0.1:7103", RoutingAddr: "127.0.0.1:7104",
		Partitions: 8, KeysFile: "./data/keys.json", MaxBody: 1 << 20, Rate: 1000, Burst: 2000, ShutdownTimeout: 10 * time.Second,
		Admission: Admission{
			Bytes: 8 << 20, BytesPerKey: 4 << 20, Requests: 256, RequestsPerKey: 64, Readers: 256, ReadersPerKey: 64,
			Wait: 100 * time.Millisecond, Target: 100 * time.Millisecond,
		},
		MemoryLimitMiB: 256,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
}

// TestParseEnv checks that every flag can come from CAIRN_<FLAG>, and that
// the command line wins.
func TestParseEnv(t *testing.T) {
	c, err := Parse([]string{"-max-body", "34"}, env(map[string]string{
		"CAIRN_HTTP_ADDR": "127.0.0.1:9999", "CAIRN_MAX_BODY": "12", "CAIRN_METRICS_ADDR": ":9200",
		"CAIRN_INGESTION_ADDR": "i0:1,i1:1", "CAIRN_STAGES_ADDR": "s:1", "CAIRN_HEALTH_ADDR": "h:1", "CAIRN_ROUTING_ADDR": "r:1", "CAIRN_PLAYS_ADDR": "p:1",
		"CAIRN_PARTITIONS": "16", "CAIRN_KEYS": "/k.json", "CAIRN_CORS_ORIGINS": " https://a.example, *",
		"CAIRN_RATE": "0", "CAIRN_BURST": "5", "CAIRN_SHUTDOWN_TIMEOUT": "3s",
		"CAIRN_MAX_INFLIGHT_BYTES": "100", "CAIRN_MAX_INFLIGHT_BYTES_PER_KEY": "50", "CAIRN_MAX_INFLIGHT_REQUESTS": "9",
		"CAIRN_MAX_INFLIGHT_REQUESTS_PER_KEY": "3", "CAIRN_MAX_READERS": "8", "CAIRN_MAX_READERS_PER_KEY": "2",
		"CAIRN_ADMIT_WAIT": "20ms", "CAIRN_ADMIT_TARGET": "50ms", "CAIRN_MEMORY_LIMIT_MIB": "64",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr: "127.0.0.1:9999", MetricsAddr: ":9200",
		IngestionAddr: "i0:1,i1:1", StagesAddr: "s:1", HealthAddr: "h:1", RoutingAddr: "r:1", PlaysAddr: "p:1",
		Partitions: 16, KeysFile: "/k.json", CORSOrigins: []string{"https://a.example", "*"},
		MaxBody: 34, Rate: 0, Burst: 5, ShutdownTimeout: 3 * time.Second,
		Admission:      Admission{Bytes: 100, BytesPerKey: 50, Requests: 9, RequestsPerKey: 3, Readers: 8, ReadersPerKey: 2, Wait: 20 * time.Millisecond, Target: 50 * time.Millisecond},
		MemoryLimitMiB: 64,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config = %+v\nwant %+v: env for every flag and the flag winning for max-body", c, want)
	}
}

// TestParseRejects checks that bad values are configuration errors naming
// the flag (and the variable, for the environment).
func TestParseRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want []string
	}{
		"bad env value":         {env: map[string]string{"CAIRN_RATE": "fast"}, want: []string{"-rate", "CAIRN_RATE"}},
		"bad flag value":        {args: []string{"-burst", "many"}, want: []string{"-burst"}},
		"unknown flag":          {args: []string{"-rates", "1"}, want: []string{"-rates"}},
		"negative rate":         {args: []string{"-rate", "-1"}, want: []string{"-rate: -1"}},
		"NaN rate":              {args: []string{"-rate", "NaN"}, want: []string{"-rate: NaN"}},
		"zero burst":            {args: []string{"-burst", "0"}, want: []string{"-burst: 0"}},
		"zero body limit":       {args: []string{"-max-body", "0"}, want: []string{"-max-body: 0"}},
		"zero partitions":       {args: []string{"-partitions", "0"}, want: []string{"-partitions: 0"}},
		"too many partitions":   {args: []string{"-partitions", "5000"}, want: []string{"-partitions: 5000"}},
		"empty upstream":        {env: map[string]string{"CAIRN_HEALTH_ADDR": " , "}, want: []string{"-health-addr: empty"}},
		"replicas > parts":      {args: []string{"-partitions", "2", "-stages-addr", "a:1,b:1,c:1"}, want: []string{"-stages-addr: 3 replicas"}},
		"empty keys":            {args: []string{"-keys", ""}, want: []string{"-keys: empty"}},
		"http addr no port":     {args: []string{"-http-addr", "localhost"}, want: []string{"-http-addr"}},
		"metrics addr empty":    {args: []string{"-metrics-addr", ""}, want: []string{"-metrics-addr: empty"}},
		"zero shutdown":         {args: []string{"-shutdown-timeout", "0s"}, want: []string{"-shutdown-timeout: 0s"}},
		"per-key above overall": {args: []string{"-max-readers", "4", "-max-readers-per-key", "5"}, want: []string{"-max-readers-per-key: 5 is above -max-readers 4"}},
		"negative bound":        {args: []string{"-max-inflight-requests", "-1"}, want: []string{"-max-inflight-requests: -1"}},
		"bytes below the body":  {args: []string{"-max-body", "2000", "-max-inflight-bytes-per-key", "1000"}, want: []string{"-max-inflight-bytes-per-key: 1000 is below -max-body 2000"}},
		"negative admit wait":   {args: []string{"-admit-wait", "-1s"}, want: []string{"-admit-wait: -1s"}},
		"negative admit target": {args: []string{"-admit-target", "-1s"}, want: []string{"-admit-target: -1s"}},
		"negative memory limit": {args: []string{"-memory-limit-mib", "-5"}, want: []string{"-memory-limit-mib: -5"}},
		"every problem at once": {args: []string{"-burst", "0", "-max-body", "-1"}, want: []string{"-burst: 0", "-max-body: -1"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.args, env(tc.env))
			if !errors.Is(err, server.ErrConfig) {
				t.Fatalf("Parse = %v, want a configuration error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse = %v, want it to name %q", err, w)
				}
			}
		})
	}
	// Workspace-split services take more replicas than partitions.
	if _, err := Parse([]string{"-partitions", "2", "-ingestion-addr", "a:1,b:1,c:1", "-routing-addr", "a:1,b:1,c:1"}, env(nil)); err != nil {
		t.Errorf("3 ingestion and routing replicas over 2 partitions: %v", err)
	}
}

// TestMainExitCodes runs the gateway's main (server.Start with Parse): a
// configuration error exits 2 naming the flag, -h exits 0.
func TestMainExitCodes(t *testing.T) {
	for name, tc := range map[string]struct {
		args   []string
		env    map[string]string
		code   int
		stderr string
	}{
		"bad env":   {env: map[string]string{"CAIRN_RATE": "fast"}, code: 2, stderr: `cairn-gateway: invalid configuration: -rate: environment CAIRN_RATE="fast"`},
		"bad value": {args: []string{"-burst", "0"}, code: 2, stderr: "cairn-gateway: invalid configuration: -burst: 0"},
		"help":      {args: []string{"-h"}, code: 0},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			ran := false
			code := server.Start(context.Background(), "gateway", tc.args, env(tc.env), &stderr, Parse,
				func(context.Context, Config) error { ran = true; return nil })
			if code != tc.code || ran || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d (ran %v), stderr %q; want exit %d, not run, stderr containing %q", code, ran, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

// TestParseMemoryLimit: GOMEMLIMIT set by the operator wins over
// -memory-limit-mib, which then sets nothing.
func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want int64
	}{
		{want: 256},
		{args: []string{"-memory-limit-mib", "512"}, want: 512},
		{env: map[string]string{"GOMEMLIMIT": "1GiB"}, want: 0},
		{args: []string{"-memory-limit-mib", "0"}, want: 0},
	} {
		c, err := Parse(tc.args, env(tc.env))
		if err != nil || c.MemoryLimitMiB != tc.want {
			t.Errorf("Parse(%v, %v): limit %d MiB, %v; want %d", tc.args, tc.env, c.MemoryLimitMiB, err, tc.want)
		}
	}
}
