package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/pkg/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Default addresses of `make run`.
const (
	defaultIngestion = "127.0.0.1:7101"
	defaultStages    = "127.0.0.1:7102"
	defaultHealth    = "127.0.0.1:7103"
	defaultRouting   = "127.0.0.1:7104"
)

// RunInfo is <data>/run.json, written by `cairn run` so that other commands
// (and scripts and tests) find the suite and its keys.
type RunInfo struct {
	GatewayURL   string            `json:"gateway_url"`
	DashboardURL string            `json:"dashboard_url,omitempty"`
	ReadKey      string            `json:"read_key"`
	AdminKey     string            `json:"admin_key"`
	WriteKey     string            `json:"write_key"`
	ServiceKey   string            `json:"service_key"`
	Workspace    string            `json:"workspace,omitempty"`
	GRPC         map[string]string `json:"grpc"`
	Metrics      map[string]string `json:"metrics,omitempty"`
	PID          int               `json:"pid,omitempty"`
}

// ReadRunInfo reads <dir>/run.json.
func ReadRunInfo(dir string) (*RunInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return nil, fmt.Errorf("read run info: %w", err)
	}
	var ri RunInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, "run.json"), err)
	}
	return &ri, nil
}

// connFlags are the flags of every command that calls the services.
type connFlags struct {
	env       *Env
	data      string
	key       string
	workspace string
	output    string
	timeout   time.Duration
	addrs     map[string]*string
}

func addConnFlags(fs *flag.FlagSet, env *Env) *connFlags {
	c := &connFlags{env: env, addrs: map[string]*string{}}
	fs.StringVar(&c.data, "data", "./data", "data directory of `cairn run` (its run.json supplies addresses and the admin key)")
	fs.StringVar(&c.key, "key", "", "API key (default $CAIRN_KEY, else the admin key in <data>/run.json)")
	fs.StringVar(&c.workspace, "workspace", "", "workspace (default: the key's own)")
	fs.StringVar(&c.output, "o", "table", "output format: table or json")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each call")
	for name, def := range map[string]string{"ingestion": defaultIngestion, "stages": defaultStages, "health": defaultHealth, "routing": defaultRouting} {
		c.addrs[name] = fs.String("addr-"+name, def, name+" gRPC address (default from run.json, else "+def+"; env CAIRN_ADDR_"+upper(name)+")")
	}
	return c
}

func upper(s string) string { return strings.ToUpper(s) }

// resolve fills unset addresses and the key from the environment and
// run.json, in that order of precedence after explicit flags.
func (c *connFlags) resolve(fs *flag.FlagSet) error {
	if c.output != "table" && c.output != "json" {
		return usagef("-o must be table or json, not %q", c.output)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	ri, err := ReadRunInfo(c.data)
	if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	for name, p := range c.addrs {
		if explicit["addr-"+name] {
			continue
		}
		if v := c.env.Getenv("CAIRN_ADDR_" + upper(name)); v != "" {
			*p = v
		} else if ri != nil && ri.GRPC[name] != "" {
			*p = ri.GRPC[name]
		}
	}
	if c.key == "" {
		c.key = c.env.Getenv("CAIRN_KEY")
	}
	if c.key == "" && ri != nil {
		c.key = ri.AdminKey
	}
	if c.key == "" {
		return fmt.Errorf("no API key: pass --key, set CAIRN_KEY, or start the suite with `cairn run --data %s` (it writes run.json)", c.data)
	}
	return nil
}

// dial connects to one service with the resolved key. Connections are lazy:
// errors show up on the first call, with the service's status.
func (c *connFlags) dial(service string) (*grpc.ClientConn, error) {
	addr := *c.addrs[service]
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.Bearer(c.key)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s at %s: %w", service, addr, err)
	}
	return conn, nil
}

// printJSON writes m as indented protojson. protojson varies its whitespace
// on purpose; re-indenting makes the output stable for scripts and diffs.
func (c *connFlags) printJSON(m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return fmt.Errorf("re-indent JSON: %w", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("re-indent JSON: %w", err)
	}
	_, err = fmt.Fprintln(c.env.Stdout, out.String())
	return err
}
