package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/demo"
	"github.com/cairn-dev/cairn/cmd/cairn/internal/ingest"
	"github.com/cairn-dev/cairn/cmd/cairn/internal/supervisor"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	"github.com/cairn-dev/cairn/pkg/domain/segment"
)

// DemoWorkspace is the workspace `cairn run` creates keys for and loads.
const DemoWorkspace = "demo"

// Services in start order: upstreams first, so consumers find them.
var suiteServices = []string{"ingestion", "stages", "health", "routing", "plays", "gateway"}

// portOffsets are each service's gRPC and metrics ports above the base
// ports: plays came after the gateway's metrics port was 9105, so it takes
// the next one rather than moving the gateway's.
var portOffsets = map[string]struct{ grpc, metrics int }{
	"ingestion": {1, 1}, "stages": {2, 2}, "health": {3, 3}, "routing": {4, 4}, "gateway": {0, 5}, "plays": {5, 6},
}

// runConfig is the configuration of `cairn run`.
type runConfig struct {
	bin, data    string
	demo, noDemo bool
	demoFlags    *demoFlags
	basePort     int
	metricsBase  int
	httpAddr     string
	partitions   int
	services     string
	readyTimeout time.Duration
	stopTimeout  time.Duration
	// restart says when a child that died is started again.
	restart restartPolicy
	// cluster starts a 3-node NATS JetStream cluster on loopback and puts
	// ingestion's log on it (-log-backend jetstream).
	cluster bool
	// self is this binary, which runs each NATS node (cairn nats-node).
	self string
}

// natsNodes is the node count of `cairn run --cluster`: three, the fewest
// that keep an R3 stream writable with one node down.
const natsNodes = 3

// NATS ports of `cairn run --cluster`, above the base port, clear of the
// services (base+1 .. base+5), their metrics (base+10 .. base+16 when
// --base-port is set) and the gateway (base+20): node i takes client port
// base+21+i, route port base+24+i and monitoring port base+27+i. With the
// default base, 7121-7129.
const (
	natsClientOffset  = 21
	natsRouteOffset   = 24
	natsMonitorOffset = 27
	natsLastOffset    = natsMonitorOffset + natsNodes - 1
)

// ports derives every address from the base ports.
type ports struct {
	grpc    map[string]string
	metrics map[string]string
	http    string
	// nats are the NATS nodes' ports, with --cluster only.
	nats []natsPorts
}

// natsPorts are one NATS node's ports.
type natsPorts struct{ client, route, monitor int }

// natsURL is the -nats-url of a cluster: every node's client URL.
func (p ports) natsURL() string {
	var u []string
	for _, n := range p.nats {
		u = append(u, "nats://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(n.client)))
	}
	return strings.Join(u, ",")
}

func (rc *runConfig) ports() ports {
	p := ports{grpc: map[string]string{}, metrics: map[string]string{}, http: rc.httpAddr}
	for _, s := range suiteServices {
		off := portOffsets[s]
		if s != "gateway" {
			p.grpc[s] = net.JoinHostPort("127.0.0.1", strconv.Itoa(rc.basePort+off.grpc))
		}
		p.metrics[s] = net.JoinHostPort("127.0.0.1", strconv.Itoa(rc.metricsBase+off.metrics))
	}
	if rc.cluster {
		for i := range natsNodes {
			p.nats = append(p.nats, natsPorts{client: rc.basePort + natsClientOffset + i, route: rc.basePort + natsRouteOffset + i, monitor: rc.basePort + natsMonitorOffset + i})
		}
	}
	return p
}

func runSuite(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "run", "run [--bin ./bin] [--data ./data] [--no-demo] [--base-port 7100] [--cluster]")
	rc := &runConfig{restart: defaultRestartPolicy}
	fs.StringVar(&rc.bin, "bin", "./bin", "directory holding cairn-<service> binaries")
	fs.StringVar(&rc.data, "data", "./data", "data directory: bbolt files, keys.json, run.json")
	fs.BoolVar(&rc.demo, "demo", true, "load the demo workspace when the ingestion log is empty")
	fs.BoolVar(&rc.noDemo, "no-demo", false, "do not load the demo workspace")
	rc.demoFlags = addDemoFlags(fs)
	fs.IntVar(&rc.basePort, "base-port", 7100, "gRPC ports are base+1 (ingestion) .. base+4 (routing), base+5 (plays)")
	fs.IntVar(&rc.metricsBase, "metrics-base-port", 9100, "metrics ports are base+1 .. base+5 (gateway), base+6 (plays); default base-port+10 when --base-port is set")
	fs.StringVar(&rc.httpAddr, "http-addr", "127.0.0.1:8080", "gateway HTTP address; default port base-port+20 when --base-port is set")
	fs.IntVar(&rc.partitions, "partitions", 8, "log partitions (the same for every service)")
	fs.StringVar(&rc.services, "services", strings.Join(suiteServices, ","), "services to start (comma-separated)")
	fs.DurationVar(&rc.readyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for every service to report SERVING")
	fs.DurationVar(&rc.stopTimeout, "stop-timeout", 20*time.Second, "how long children get to stop before they are killed")
	fs.BoolVar(&rc.cluster, "cluster", false, "also start a 3-node NATS JetStream cluster on loopback (ports base+21 .. base+29, stores in <data>/nats) and keep ingestion's log on it")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if explicit["base-port"] {
		if !explicit["metrics-base-port"] {
			rc.metricsBase = rc.basePort + 10
		}
		if !explicit["http-addr"] {
			rc.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rc.basePort+20))
		}
	}
	last := 20 // the gateway's HTTP port
	if rc.cluster {
		last = natsLastOffset
	}
	if rc.basePort <= 0 || rc.basePort+last > 65535 || rc.metricsBase <= 0 || rc.metricsBase+6 > 65535 {
		return usagef("ports out of range")
	}
	if rc.partitions <= 0 {
		return usagef("--partitions must be positive")
	}
	if rc.noDemo {
		rc.demo = false
	}
	if rc.cluster {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--cluster: find this binary to run the NATS nodes: %w", err)
		}
		rc.self = self
	}
	opts, err := rc.demoFlags.options()
	if err != nil {
		return err
	}
	enabled := map[string]bool{}
	for _, s := range strings.Split(rc.services, ",") {
		s = strings.TrimSpace(s)
		if !contains(suiteServices, s) {
			return usagef("--services: unknown service %q", s)
		}
		enabled[s] = true
	}
	return superviseSuite(ctx, env, rc, opts, enabled)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// logf prints the supervisor's own lines, prefixed like a child's.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%-9s | %s\n", "cairn", fmt.Sprintf(format, args...))
}

func superviseSuite(ctx context.Context, env *Env, rc *runConfig, opts demo.Options, enabled map[string]bool) error {
	if err := os.MkdirAll(rc.data, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	data, err := filepath.Abs(rc.data)
	if err != nil {
		return fmt.Errorf("resolve data directory: %w", err)
	}
	keysPath := filepath.Join(data, "keys.json")
	info, err := ensureKeys(data, keysPath)
	if err != nil {
		return err
	}
	p := rc.ports()
	info.GatewayURL = "http://" + p.http
	info.DashboardURL = info.GatewayURL + "/#key=" + info.ReadKey
	info.Workspace = DemoWorkspace
	// run.json names only the services this suite runs, so that tools
	// reading it (cairn status, the tests) do not wait on one it does not.
	info.GRPC, info.Metrics = map[string]string{}, map[string]string{}
	for s, addr := range p.grpc {
		if enabled[s] {
			info.GRPC[s] = addr
		}
	}
	for s, addr := range p.metrics {
		if enabled[s] {
			info.Metrics[s] = addr
		}
	}
	info.PID = os.Getpid()
	if rc.cluster {
		info.NATS = p.natsURL()
	}

	g := supervisor.NewGroup(env.Stdout, clock.Real{})
	stop := func() error {
		logf(env.Stdout, "stopping the suite")
		if err := g.Stop(rc.stopTimeout); err != nil {
			logf(env.Stdout, "warning: %v", err)
		}
		return nil
	}
	if rc.cluster {
		// The NATS nodes first, ready before ingestion starts: ingestion
		// exits when it cannot reach them or create its streams. They stop
		// last, being first in the group.
		for i := range p.nats {
			if err := g.Start(natsProcess(i, rc, p, data)); err != nil {
				_ = stop()
				return err
			}
		}
		readyCtx, cancel := context.WithTimeout(ctx, rc.readyTimeout)
		err := g.WaitReady(readyCtx, 100*time.Millisecond)
		cancel()
		if err != nil {
			_ = stop()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("start the NATS cluster: %w", err)
		}
		logf(env.Stdout, "NATS JetStream cluster of %d nodes is ready at %s", len(p.nats), info.NATS)
	}
	for _, s := range suiteServices {
		if !enabled[s] {
			continue
		}
		if err := g.Start(processFor(s, rc, p, data, keysPath, info.ServiceKey)); err != nil {
			_ = stop()
			return err
		}
	}
	readyCtx, cancel := context.WithTimeout(ctx, rc.readyTimeout)
	err = g.WaitReady(readyCtx, 100*time.Millisecond)
	cancel()
	if err != nil {
		_ = stop()
		if ctx.Err() != nil {
			return nil // Interrupted while starting: a clean stop.
		}
		return fmt.Errorf("start the suite: %w", err)
	}
	logf(env.Stdout, "all services are ready")
	return keepUp(ctx, env, rc, g, stop, func(loadCtx context.Context) error {
		if rc.demo && enabled["ingestion"] {
			loadDemo(loadCtx, env.Stdout, p, info, opts, enabled)
		}
		if loadCtx.Err() != nil {
			return nil
		}
		if err := writeRunInfo(data, info); err != nil {
			return err
		}
		printBanner(env.Stdout, info, enabled, data)
		return nil
	})
}

// keepUp runs the started suite until ctx ends (Ctrl-C, SIGTERM), then stops
// it. Meanwhile it runs load (the demo, run.json and the banner) and restarts
// every child that dies, after the backoff of rc.restart, saying so; it stops
// the suite only when load fails, or a child keeps dying (rc.restart's limit)
// or cannot be started again.
func keepUp(ctx context.Context, env *Env, rc *runConfig, g *supervisor.Group, stop func() error, load func(context.Context) error) error {
	clk := env.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	loadCtx, cancelLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		defer close(loadDone)
		loadErr <- load(loadCtx)
	}()
	// Pending restarts wait in their own goroutines, so that several
	// children can be backing off at once; they end with the suite.
	waitCtx, cancelWaits := context.WithCancel(ctx)
	defer cancelWaits()
	due := make(chan string)
	halt := func() error {
		cancelLoad()
		<-loadDone
		return stop()
	}
	rs := newRestarts(rc.restart)
	for {
		select {
		case e := <-g.Exits():
			d := rs.onExit(e.Name, clk.Now())
			if d.giveUp {
				logf(env.Stdout, "%s", d.message(e.Name, e.Err, rs.policy))
				_ = halt()
				return fmt.Errorf("%s keeps exiting (%s): restarted %d times within %s", e.Name, exitText(e.Err), rs.policy.limit, rs.policy.window)
			}
			// The wait is registered before the line is printed, so that
			// whoever reads the line (a test with a manual clock) finds it.
			wait := clk.After(d.delay)
			logf(env.Stdout, "%s", d.message(e.Name, e.Err, rs.policy))
			go func(name string) {
				select {
				case <-wait:
					select {
					case due <- name:
					case <-waitCtx.Done():
					}
				case <-waitCtx.Done():
				}
			}(e.Name)
		case err := <-loadErr:
			if err != nil {
				_ = halt()
				return err
			}
		case name := <-due:
			if err := g.Restart(name); err != nil {
				logf(env.Stdout, "cannot restart %s: %v; stopping the suite", name, err)
				_ = halt()
				return fmt.Errorf("restart %s: %w", name, err)
			}
		case <-ctx.Done():
			return halt()
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// processFor builds one child's command line. Flags follow the conventions
// of pkg/server (services) and the gateway's main; the service key travels
// in the environment so that it does not show up in ps.
func processFor(name string, rc *runConfig, p ports, data, keysPath, serviceKey string) supervisor.Process {
	proc := supervisor.Process{
		Name: name,
		Path: filepath.Join(rc.bin, "cairn-"+name),
		Env:  []string{"CAIRN_SERVICE_KEY=" + serviceKey},
		Args: []string{"-metrics-addr", p.metrics[name], "-keys", keysPath},
	}
	upstreams := map[string][]string{
		"stages":  {"ingestion"},
		"health":  {"ingestion", "stages"},
		"routing": {"ingestion", "stages", "health"},
		"plays":   {"stages", "health", "routing"},
		"gateway": {"ingestion", "stages", "health", "routing", "plays"},
	}[name]
	for _, u := range upstreams {
		proc.Env = append(proc.Env, "CAIRN_"+upper(u)+"_ADDR="+p.grpc[u])
	}
	if name == "plays" {
		// Everything runs on this machine, so the plays file's webhooks
		// may go to receivers on loopback; a deployment leaves this off.
		proc.Args = append(proc.Args, "-allow-private-destinations", "-dashboard-url", "http://"+p.http)
	}
	if name == "gateway" {
		proc.Args = append(proc.Args, "-http-addr", p.http)
		for _, u := range upstreams {
			addr := p.grpc[u]
			if u == "plays" && rc.services != "" && !contains(strings.Split(rc.services, ","), "plays") {
				addr = "" // a suite started without plays: the gateway serves no plays paths
			}
			proc.Args = append(proc.Args, "-"+u+"-addr", addr)
		}
		proc.ReadyURL = "http://" + p.http + "/readyz"
		return proc
	}
	proc.Args = append(proc.Args, "-grpc-addr", p.grpc[name], "-data", data, "-partitions", strconv.Itoa(rc.partitions))
	if name == "ingestion" && len(p.nats) > 0 {
		proc.Args = append(proc.Args, "-log-backend", "jetstream", "-nats-url", p.natsURL())
	}
	proc.GRPCAddr = p.grpc[name]
	proc.ReasonURL = "http://" + p.metrics[name] + "/readyz"
	return proc
}

// natsProcess is NATS node i of --cluster: this binary's nats-node
// command, its store under <data>/nats/n<i>, routes to every node. Ready
// when /healthz answers 200, which a node does once it has joined the
// JetStream cluster.
func natsProcess(i int, rc *runConfig, p ports, data string) supervisor.Process {
	var routes []string
	for _, n := range p.nats {
		routes = append(routes, "nats://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(n.route)))
	}
	name := "n" + strconv.Itoa(i)
	n := p.nats[i]
	return supervisor.Process{
		Name: "nats-" + name,
		Path: rc.self,
		Args: []string{"nats-node", "--name", name, "--cluster", "cairn-local",
			"--port", strconv.Itoa(n.client), "--cluster-port", strconv.Itoa(n.route), "--monitor-port", strconv.Itoa(n.monitor),
			"--routes", strings.Join(routes, ","), "--store", filepath.Join(data, "nats", name)},
		ReadyURL: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.monitor)) + "/healthz",
	}
}

// ensureKeys returns the suite's keys. Tokens are stored only hashed, so the
// previous run.json is the only place they can be recovered from: reuse its
// keys when the keyring still accepts them, otherwise create a fresh set.
func ensureKeys(data, keysPath string) (*RunInfo, error) {
	kr, err := auth.LoadKeyring(keysPath)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	if prev, err := ReadRunInfo(data); err == nil {
		valid := true
		for tok, role := range map[string]auth.Role{prev.ReadKey: auth.RoleRead, prev.WriteKey: auth.RoleWrite, prev.AdminKey: auth.RoleAdmin, prev.ServiceKey: auth.RoleService} {
			pr, err := kr.Authenticate(tok)
			if err != nil || pr.Role != role || (role == auth.RoleService && !pr.ClusterWide()) {
				valid = false
			}
		}
		if valid {
			return &RunInfo{ReadKey: prev.ReadKey, WriteKey: prev.WriteKey, AdminKey: prev.AdminKey, ServiceKey: prev.ServiceKey}, nil
		}
	}
	info := &RunInfo{}
	for _, k := range []struct {
		ws   string
		role auth.Role
		dst  *string
	}{
		{DemoWorkspace, auth.RoleWrite, &info.WriteKey},
		{DemoWorkspace, auth.RoleRead, &info.ReadKey},
		{DemoWorkspace, auth.RoleAdmin, &info.AdminKey},
		// Cluster-wide: the services read each other's logs, whose
		// partitions hold every workspace.
		{"", auth.RoleService, &info.ServiceKey},
	} {
		tok, err := kr.Create(k.ws, k.role)
		if err != nil {
			return nil, fmt.Errorf("create %s key: %w", k.role, err)
		}
		*k.dst = tok
	}
	return info, nil
}

// writeRunInfo writes run.json atomically; it holds keys, so only the owner
// may read it.
func writeRunInfo(data string, info *RunInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run info: %w", err)
	}
	tmp := filepath.Join(data, ".run.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write run info: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(data, "run.json")); err != nil {
		return fmt.Errorf("write run info: %w", err)
	}
	return nil
}

func printBanner(w io.Writer, info *RunInfo, enabled map[string]bool, data string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cairn is running.")
	if enabled["gateway"] {
		fmt.Fprintf(w, "  Gateway:    %s   (OpenAPI: %s/openapi.json)\n", info.GatewayURL, info.GatewayURL)
		fmt.Fprintf(w, "  Dashboard:  %s\n", info.DashboardURL)
	}
	if info.NATS != "" {
		fmt.Fprintf(w, "  NATS:       %s   (3-node JetStream cluster; ingestion's log, stores in %s)\n", info.NATS, filepath.Join(data, "nats"))
	}
	fmt.Fprintln(w, "  gRPC:")
	for _, s := range suiteServices {
		if addr := info.GRPC[s]; addr != "" && enabled[s] {
			fmt.Fprintf(w, "    %-10s %s   (metrics http://%s/metrics)\n", s, addr, info.Metrics[s])
		}
	}
	fmt.Fprintf(w, "  Keys (workspace %q):\n", DemoWorkspace)
	fmt.Fprintf(w, "    read     %s\n    write    %s\n    admin    %s\n    service  %s\n", info.ReadKey, info.WriteKey, info.AdminKey, info.ServiceKey)
	fmt.Fprintf(w, "  Written to %s. Try: cairn funnel --data %s\n", filepath.Join(data, "run.json"), data)
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	fmt.Fprintln(w)
}

// loadDemo fills an empty suite with the demo workspace: the routing config
// first (so qualifications in the data get routed), then the events. Failures
// are reported but do not stop the suite: it is still usable without demo data.
func loadDemo(ctx context.Context, w io.Writer, p ports, info *RunInfo, opts demo.Options, enabled map[string]bool) {
	dial := func(s string) (*grpc.ClientConn, error) {
		return grpc.NewClient(p.grpc[s], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(auth.Bearer(info.AdminKey)))
	}
	ic, err := dial("ingestion")
	if err != nil {
		logf(w, "demo: %v", err)
		return
	}
	defer ic.Close()
	client := ingestionv1.NewIngestionServiceClient(ic)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	li, err := client.GetLogInfo(lctx, &ingestionv1.GetLogInfoRequest{})
	cancel()
	if err != nil {
		logf(w, "demo: not loaded: cannot read the ingestion log: %s", describe(err))
		return
	}
	for _, part := range li.GetPartitions() {
		if part.GetLastOffset() > 0 {
			logf(w, "demo: the ingestion log already holds data; not loading the demo workspace")
			return
		}
	}
	if enabled["routing"] {
		rc, err := dial("routing")
		if err == nil {
			a := &applier{workspace: "", timeout: 30 * time.Second, routing: routingv1.NewRoutingServiceClient(rc)}
			if res, err := a.apply(ctx, "routing.yaml", demo.RoutingYAML); err != nil {
				logf(w, "demo: routing config not applied: %s", describe(err))
			} else {
				fmt.Fprintln(prefixed{w}, res.Summary)
			}
			rc.Close()
		}
	}
	if enabled["stages"] {
		// Before the events, so that both journeys place every account as
		// its history arrives and no replay is needed.
		if sc, err := dial("stages"); err == nil {
			applyDemoJourneys(ctx, w, stagesv1.NewStagesServiceClient(sc))
			sc.Close()
		}
	}
	if enabled["plays"] {
		// Before the events, so that the plays fire on the history as it
		// is processed.
		if pc, err := dial("plays"); err == nil {
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := playsv1.NewPlaysServiceClient(pc).ApplyPlays(actx, &playsv1.ApplyPlaysRequest{Yaml: string(demo.PlaysYAML)})
			cancel()
			if err != nil {
				logf(w, "demo: plays not applied: %s", describe(err))
			} else {
				logf(w, "demo: plays version %d applied (%d plays)", resp.GetPlays().GetVersion(), len(resp.GetPlays().GetPlays()))
			}
			pc.Close()
		}
	}
	ds := demo.Generate(opts)
	items, err := demoItems(ds)
	if err != nil {
		logf(w, "demo: %v", err)
		return
	}
	logf(w, "demo: loading %d events for %d simulated companies (seed %d, up to %s); %d of them identify themselves, the other %d only visit anonymously, so the workspace has %d accounts",
		len(items), len(ds.Accounts), opts.Seed, opts.Now.Format("2006-01-02"), ds.Identified(), len(ds.Accounts)-ds.Identified(), ds.Identified())
	next := 10
	var sum ingest.Summary
	start := time.Now()
	err = ingest.Send(ctx, client, items, ingest.Options{BatchSize: 500, Ordered: true, Progress: func(done, total int) {
		if pct := done * 100 / total; pct >= next {
			logf(w, "demo: %d%% (%d/%d events)", pct, done, total)
			next = pct/10*10 + 10
		}
	}}, &sum)
	if err != nil {
		logf(w, "demo: load stopped: %s", describe(err))
		return
	}
	logf(w, "demo: accepted %d, duplicate %d, rejected %d in %s", sum.Accepted, sum.Duplicates, sum.Rejected, time.Since(start).Round(time.Millisecond))
	for _, r := range sum.Rejections {
		logf(w, "demo: rejected event %d (%s): %s %s", r.Line, r.MessageID, r.Field, r.Reason)
	}
}

// demoDefaultTemplate is the template stages applies as journey "default"
// to a workspace whose first event arrives before any journey was applied
// (services/stages/internal/journey.DefaultTemplate).
const demoDefaultTemplate = "five-stage"

// applyDemoJourneys gives the demo workspace two journeys: the sales-led
// default and the self-serve one (demo.JourneyYAML). Stages installs the
// default only in a workspace that has no journey when its first event
// arrives, so once the second journey is applied the default must be
// applied too: the same template under the same id, as stages would.
func applyDemoJourneys(ctx context.Context, w io.Writer, sc stagesv1.StagesServiceClient) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tl, err := sc.ListJourneyTemplates(cctx, &stagesv1.ListJourneyTemplatesRequest{})
	if err != nil {
		logf(w, "demo: journeys not applied: list templates: %s", describe(err))
		return
	}
	var def *stagesv1.JourneyDefinition
	for _, t := range tl.GetTemplates() {
		if t.GetId() == demoDefaultTemplate {
			def = t
		}
	}
	if def == nil {
		logf(w, "demo: journeys not applied: stages has no %s template", demoDefaultTemplate)
		return
	}
	def.Id = "default"
	for _, req := range []*stagesv1.ApplyJourneyRequest{
		{Definition: def, Activate: true},
		{Yaml: string(demo.JourneyYAML), Activate: true},
	} {
		resp, err := sc.ApplyJourney(cctx, req)
		if err != nil {
			logf(w, "demo: journey not applied: %s", describe(err))
			return
		}
		d := resp.GetDefinition()
		logf(w, "demo: journey %s (%s) version %d applied (%d stages, active: %t)", d.GetId(), d.GetName(), d.GetVersion(), len(d.GetStages()), resp.GetActive())
	}
}

// prefixed writes the supervisor's prefix before each line.
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			logf(p.w, "demo: %s", strings.TrimSuffix(line, "\n"))
		}
	}
	return len(b), nil
}

// demoItems converts the generator's Segment calls through pkg/domain/segment, the
// same decoder the gateway and `cairn ingest` use, so the demo exercises the
// real path.
func demoItems(ds demo.Dataset) ([]ingest.Item, error) {
	items := make([]ingest.Item, 0, len(ds.Events))
	for i := range ds.Events {
		b, err := json.Marshal(&ds.Events[i])
		if err != nil {
			return nil, fmt.Errorf("encode demo event %d: %w", i, err)
		}
		ev, err := segment.DecodeCall("", b)
		if err != nil {
			return nil, fmt.Errorf("decode demo event %d: %w", i, err)
		}
		items = append(items, ingest.Item{Event: ev, Line: i + 1})
	}
	return items, nil
}

func generate(opts demo.Options) demo.Dataset { return demo.Generate(opts) }

func writeDemo(w io.Writer, ds demo.Dataset) error { return demo.WriteNDJSON(w, ds.Events) }

func (d *demoFlags) options() (demo.Options, error) {
	if d.accounts <= 0 || d.accounts > 100000 {
		return demo.Options{}, usagef("--demo-accounts must be between 1 and 100000")
	}
	now := time.Now().UTC()
	if d.now != "" {
		t, err := time.Parse("2006-01-02", d.now)
		if err != nil {
			return demo.Options{}, usagef("--now: want YYYY-MM-DD: %v", err)
		}
		now = t
	}
	return demo.Options{Seed: d.seed, Accounts: d.accounts, Now: now.Truncate(24 * time.Hour), Workspace: DemoWorkspace}, nil
}
