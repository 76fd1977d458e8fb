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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/pkg/auth"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
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
	// NATS is the -nats-url of the cluster `cairn run --cluster` started.
	NATS string `json:"nats_url,omitempty"`
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
	formats   []string
	timeout   time.Duration
	addrs     map[string]*string
	// keyWorkspace is the workspace of the key in use when run.json names
	// it (its keys), for routing among replicas split by workspace.
	keyWorkspace string
}

// addConnFlags registers the connection flags. Help shows the address
// flags of the services a command calls; the others are still accepted
// (hidden), so that scripts can pass every address to every command.
// formats are the -o values the command prints (default table and json).
func addConnFlags(fs *flag.FlagSet, env *Env, services []string, formats ...string) *connFlags {
	if len(formats) == 0 {
		formats = []string{"table", "json"}
	}
	c := &connFlags{env: env, addrs: map[string]*string{}, formats: formats}
	fs.StringVar(&c.data, "data", "./data", "data directory of cairn run (its run.json supplies addresses and the admin key)")
	fs.StringVar(&c.key, "key", "", "API key (default $CAIRN_KEY, else the admin key in <data>/run.json)")
	fs.StringVar(&c.workspace, "workspace", "", "workspace (default: the key's own)")
	fs.StringVar(&c.output, "o", "table", "output format: "+orList(formats))
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each call")
	for _, name := range []string{"ingestion", "stages", "health", "routing", "plays"} {
		def := pkgserver.DefaultGRPCAddr(name)
		c.addrs[name] = fs.String("addr-"+name, def, name+" gRPC address (default from run.json, else "+def+"; env CAIRN_ADDR_"+upper(name)+")"+listUsage(fs.Name(), name))
		if !contains(services, name) {
			hideFlags(fs, "addr-"+name)
		}
	}
	return c
}

// orList is "table, json or csv".
func orList(ss []string) string {
	if len(ss) == 1 {
		return ss[0]
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

func upper(s string) string { return strings.ToUpper(s) }

// resolve fills unset addresses and the key from the environment and
// run.json, in that order of precedence after explicit flags.
func (c *connFlags) resolve(fs *flag.FlagSet) error {
	if !contains(c.formats, c.output) {
		return usagef("-o must be %s, not %q", orList(c.formats), c.output)
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
	if ri != nil && c.key != "" && (c.key == ri.AdminKey || c.key == ri.ReadKey || c.key == ri.WriteKey) {
		c.keyWorkspace = ri.Workspace
	}
	if c.key == "" {
		return fmt.Errorf("no API key: pass --key, set CAIRN_KEY, or start the suite with cairn run --data %s (it writes run.json)", c.data)
	}
	return nil
}

// dial connects to one service with the resolved key. Connections are lazy:
// errors show up on the first call, with the service's status.
func (c *connFlags) dial(service string) (*grpc.ClientConn, error) {
	addr, err := c.pick(service)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.Bearer(c.key)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s at %s: %w", service, addr, err)
	}
	return conn, nil
}

// dialEvery connects to every replica of service when --addr-<service>
// lists several (in replica order), else to its one address: for the
// commands whose answer is an aggregate over every account, which they
// merge from each replica's part (pkg/domain/aggregate), as the gateway does.
// close closes them all.
func (c *connFlags) dialEvery(service string) (conns []*grpc.ClientConn, close func(), err error) {
	close = func() {
		for _, cc := range conns {
			cc.Close()
		}
	}
	addrs := pkgserver.SplitList(*c.addrs[service])
	if len(addrs) <= 1 {
		cc, err := c.dial(service)
		if err != nil {
			return nil, nil, err
		}
		return []*grpc.ClientConn{cc}, close, nil
	}
	for _, addr := range addrs {
		// Parts carry raw times and samples, so they may exceed gRPC's
		// default 4 MiB; the gateway's clients allow the same.
		cc, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.Bearer(c.key)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pkgserver.MaxClientRecvBytes)))
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("connect to %s at %s: %w", service, addr, err)
		}
		conns = append(conns, cc)
	}
	return conns, close, nil
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

// pick returns the address to call service at. An address list of
// ingestion, routing or plays (split by workspace, replicas in replica order) is
// resolved to the replica of the workspace: --workspace, else the
// workspace of run.json's key when that is the key in use. Stages and
// health are split by account, which a command does not know when it
// connects, so they take one address (a replica's, or use the gateway's
// REST API, which routes).
func (c *connFlags) pick(service string) (string, error) {
	addrs := pkgserver.SplitList(*c.addrs[service])
	switch {
	case len(addrs) == 0:
		return "", usagef("--addr-%s is empty", service)
	case len(addrs) == 1:
		return addrs[0], nil
	case !byWorkspace(service):
		return "", usagef("--addr-%s lists %d addresses: %s replicas split accounts, so name one replica (or use the gateway's REST API, which routes)", service, len(addrs), service)
	}
	ws := c.workspace
	if ws == "" {
		ws = c.keyWorkspace
	}
	if ws == "" {
		return "", usagef("--addr-%s lists %d replicas, split by workspace: pass --workspace to pick the workspace's replica", service, len(addrs))
	}
	return addrs[stream.WorkspaceReplica(ws, len(addrs))], nil
}

// listUsage tells which --addr flags of command take a replica list.
func listUsage(command, service string) string {
	switch {
	case byWorkspace(service):
		return "; or its replicas' addresses comma-separated in replica order, the workspace's replica is called"
	case command == "funnel" && service == "stages", command == "backtest" && service == "health":
		return "; or its replicas' addresses comma-separated in replica order, whose answers are merged"
	}
	return ""
}

// byWorkspace tells the services whose replicas split the workspaces
// between them (rather than the accounts), so that a command can pick the
// replica of its workspace.
func byWorkspace(service string) bool {
	return service == "ingestion" || service == "routing" || service == "plays"
}
