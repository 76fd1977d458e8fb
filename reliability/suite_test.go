package reliability

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/testport"
)

// services are the stateful services in dependency order.
var services = []string{"ingestion", "stages", "health", "routing"}

// upstreams lists who each process consumes from (as cmd/cairn's supervisor
// wires them).
var upstreams = map[string][]string{
	"stages":  {"ingestion"},
	"health":  {"ingestion", "stages"},
	"routing": {"ingestion", "stages", "health"},
	"gateway": {"ingestion", "stages", "health", "routing"},
}

// partitions is the suite's partition count (the services' default).
const partitions = 8

// binDir holds the binaries built by TestMain; empty under -short.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("reliability: skipping the suite-level tests under -short (they build and run every service)")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "cairn-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: create bin dir:", err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
	} else {
		binDir = dir
		code = m.Run()
		// Every process is reaped and every client closed by the tests'
		// cleanups; idle keep-alive connections of the scrapes are not.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); code == 0 && err != nil {
			fmt.Fprintln(os.Stderr, "reliability: leaked goroutines:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles every service binary from the workspace into dir.
func build(dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, s := range append(append([]string{}, services...), "gateway") {
		args = append(args, "github.com/cairn-dev/cairn/services/"+s)
	}
	cmd := exec.Command("go", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build the services: %w\n%s", err, out)
	}
	for _, s := range append(append([]string{}, services...), "gateway") {
		// go build names each binary after its package directory.
		if err := os.Rename(filepath.Join(dir, s), filepath.Join(dir, "cairn-"+s)); err != nil {
			return fmt.Errorf("rename %s binary: %w", s, err)
		}
	}
	return nil
}

// keys are the tokens the suite creates in its keyring.
type keys struct {
	service, admin, write, read string
	otherAdmin                  string // admin of workspace otherWorkspace
}

const (
	workspace      = "rel-ws"
	otherWorkspace = "rival-corp"
)

// suite is one set of service processes sharing a data dir and keyring.
type suite struct {
	t       *testing.T
	dir     string
	keyring string
	keys    keys
	grpc    map[string]string
	metrics map[string]string
	http    string
	// dataDirs overrides the data directory of some processes (default
	// <dir>/data), e.g. to put one on a small file system.
	dataDirs map[string]string
	// logLevel is CAIRN_LOG_LEVEL for the processes (default warn).
	logLevel string
	// replicas is the replica count of a service (default 1), set by scale.
	replicas map[string]int
	// extraArgs are added to a process's command line (e.g. ingestion's
	// -log-backend jetstream).
	extraArgs map[string][]string
	// extraEnv is added to a process's environment (e.g. CAIRN_FAILPOINTS).
	extraEnv map[string][]string
	// spreadOver, when set (spread), are the workspaces the workload's
	// accounts are spread over, and wsKeys their keys; otherwise every
	// account is in workspace, with keys.
	spreadOver []string
	wsKeys     map[string]keys

	mu      sync.Mutex
	procs   map[string]*exec.Cmd
	waitMap map[string]chan error // each process's Wait result, buffered
	conns   map[string]*grpc.ClientConn
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	if testing.Short() {
		t.Skip("suite-level test: needs the service binaries (not built under -short)")
	}
	s := &suite{
		t: t, dir: t.TempDir(), grpc: map[string]string{}, metrics: map[string]string{},
		procs: map[string]*exec.Cmd{}, conns: map[string]*grpc.ClientConn{},
	}
	s.keyring = filepath.Join(s.dir, "keys.json")
	kr, err := auth.LoadKeyring(s.keyring)
	if err != nil {
		t.Fatalf("load keyring: %v", err)
	}
	for _, k := range []struct {
		ws   string
		role auth.Role
		dst  *string
	}{
		{"", auth.RoleService, &s.keys.service},
		{workspace, auth.RoleAdmin, &s.keys.admin},
		{workspace, auth.RoleWrite, &s.keys.write},
		{workspace, auth.RoleRead, &s.keys.read},
		{otherWorkspace, auth.RoleAdmin, &s.keys.otherAdmin},
	} {
		if *k.dst, err = kr.Create(k.ws, k.role); err != nil {
			t.Fatalf("create %s key: %v", k.role, err)
		}
	}
	for _, name := range append(append([]string{}, services...), "gateway") {
		s.grpc[name] = testport.Addr(t)
		s.metrics[name] = testport.Addr(t)
	}
	s.http = testport.Addr(t)
	t.Cleanup(s.close)
	return s
}

// command builds a process's command line the way cmd/cairn's supervisor
// does; the service key travels in the environment. A replica process is
// named <service>-<index> (see scale).
func (s *suite) command(name string) *exec.Cmd {
	svc, index := splitReplica(name)
	args := []string{"-metrics-addr", s.metrics[name], "-keys", s.keyring}
	level := s.logLevel
	if level == "" {
		level = "warn"
	}
	env := append(os.Environ(), "CAIRN_SERVICE_KEY="+s.keys.service, "CAIRN_LOG_LEVEL="+level)
	for _, u := range upstreams[svc] {
		env = append(env, "CAIRN_"+strings.ToUpper(u)+"_ADDR="+s.addrList(u))
	}
	if svc == "gateway" {
		args = append(args, "-http-addr", s.http, "-partitions", strconv.Itoa(partitions))
		for _, u := range upstreams[svc] {
			args = append(args, "-"+u+"-addr", s.addrList(u))
		}
		// These suites run no plays service (its default address would
		// leave the gateway waiting for one).
		args = append(args, "-plays-addr", "")
	} else {
		data := filepath.Join(s.dir, "data")
		if d := s.dataDirs[name]; d != "" {
			data = d
		}
		args = append(args, "-grpc-addr", s.grpc[name], "-data", data, "-partitions", strconv.Itoa(partitions))
		if n := s.replicas[svc]; n > 1 {
			args = append(args, "-replica", strconv.Itoa(index), "-replicas", strconv.Itoa(n))
		}
	}
	args = append(args, s.extraArgs[name]...)
	cmd := exec.Command(filepath.Join(binDir, "cairn-"+svc), args...)
	cmd.Env = append(env, s.extraEnv[name]...)
	return cmd
}

// scale makes svc run as n replicas: replica 0 keeps the service's name and
// address, replica i > 0 is process "<svc>-<i>"; each gets its own data
// directory, since every replica of a service opens <data>/<svc>.db.
func (s *suite) scale(svc string, n int) {
	if s.replicas == nil {
		s.replicas = map[string]int{}
	}
	if s.dataDirs == nil {
		s.dataDirs = map[string]string{}
	}
	s.replicas[svc] = n
	for _, name := range s.replicaNames(svc) {
		if s.grpc[name] == "" {
			s.grpc[name] = testport.Addr(s.t)
			s.metrics[name] = testport.Addr(s.t)
		}
		s.dataDirs[name] = filepath.Join(s.dir, "data-"+name)
	}
}

// replicaNames lists the process names of svc's replicas in replica order.
func (s *suite) replicaNames(svc string) []string {
	names := []string{svc}
	for i := 1; i < s.replicas[svc]; i++ {
		names = append(names, svc+"-"+strconv.Itoa(i))
	}
	return names
}

// addrList is svc's gRPC address, or its replicas' comma-separated.
func (s *suite) addrList(svc string) string {
	var addrs []string
	for _, name := range s.replicaNames(svc) {
		addrs = append(addrs, s.grpc[name])
	}
	return strings.Join(addrs, ",")
}

// ownerOf names the replica process of svc that holds the account: by
// partition for stages and health, by workspace for ingestion and routing.
func (s *suite) ownerOf(svc, account string) string {
	ws := s.workspaceOf(account)
	names := s.replicaNames(svc)
	if svc == "ingestion" || svc == "routing" {
		return names[stream.WorkspaceReplica(ws, len(names))]
	}
	return names[stream.AccountReplica(ws, account, partitions, len(names))]
}

// wsOwner names the replica process of ingestion or routing that holds the
// workspace.
func (s *suite) wsOwner(svc, ws string) string {
	names := s.replicaNames(svc)
	return names[stream.WorkspaceReplica(ws, len(names))]
}

// spread puts the workload's accounts into the given workspaces, account n
// into workspaces[n % len], each with its own admin, write and read keys.
func (s *suite) spread(workspaces ...string) {
	s.t.Helper()
	kr, err := auth.LoadKeyring(s.keyring)
	if err != nil {
		s.t.Fatalf("load keyring: %v", err)
	}
	s.spreadOver, s.wsKeys = workspaces, map[string]keys{}
	for _, ws := range workspaces {
		var k keys
		for _, r := range []struct {
			role auth.Role
			dst  *string
		}{{auth.RoleAdmin, &k.admin}, {auth.RoleWrite, &k.write}, {auth.RoleRead, &k.read}} {
			if *r.dst, err = kr.Create(ws, r.role); err != nil {
				s.t.Fatalf("create %s key of %s: %v", r.role, ws, err)
			}
		}
		s.wsKeys[ws] = k
	}
}

// workspaces lists the workspaces the workload uses.
func (s *suite) workspaces() []string {
	if len(s.spreadOver) == 0 {
		return []string{workspace}
	}
	return s.spreadOver
}

// workspaceOf is the workspace of a workload account ("acct-<n>").
func (s *suite) workspaceOf(account string) string {
	if len(s.spreadOver) == 0 {
		return workspace
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(account, "acct-"))
	return s.spreadOver[n%len(s.spreadOver)]
}

// keysOf returns the keys of a workspace of the workload.
func (s *suite) keysOf(ws string) keys {
	if k, ok := s.wsKeys[ws]; ok {
		return k
	}
	return s.keys
}

// probeWorkspace names a workspace that replica k of svc (split by
// workspace) owns, for log-wide calls that must name one (GetLogInfo with
// the service key).
func (s *suite) probeWorkspace(svc string, k int) string {
	return stream.WorkspaceOn("probe-", k, len(s.replicaNames(svc)))
}

// splitReplica splits a process name "<svc>-<index>" (replica 0 is "<svc>").
func splitReplica(name string) (string, int) {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if n, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i], n
		}
	}
	return name, 0
}

// start launches a process and waits until it reports SERVING (gRPC
// health; the gateway's /readyz).
func (s *suite) start(name string) {
	s.t.Helper()
	done := s.launch(name)
	exited := func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("%s exited while starting: %v\n%s", name, err, s.logTail(name))
		default:
			return nil
		}
	}
	s.waitReady(name, exited)
}

// launch starts a process without waiting for it to be ready and returns
// the channel that receives its Wait result (once: put it back after
// reading it, for kill and stop).
func (s *suite) launch(name string) chan error {
	s.t.Helper()
	cmd := s.command(name)
	logf, err := os.OpenFile(filepath.Join(s.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatalf("open %s log: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	_ = logf.Close() // the child holds its own descriptor
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.mu.Lock()
	s.procs[name] = cmd
	s.waits()[name] = done
	s.mu.Unlock()
	return done
}

// waits returns the Wait results by process; call with mu held.
func (s *suite) waits() map[string]chan error {
	if s.waitMap == nil {
		s.waitMap = map[string]chan error{}
	}
	return s.waitMap
}

// waitReady polls readiness with a bounded failure guard.
func (s *suite) waitReady(name string, exited func() error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		if err := exited(); err != nil {
			s.t.Fatal(err)
		}
		if s.ready(ctx, name) {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s not ready within the guard\n%s", name, s.logTail(name))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *suite) ready(ctx context.Context, name string) bool {
	if name == "gateway" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(s.conn(name, "")).Check(cctx, &healthpb.HealthCheckRequest{})
	return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// kill sends SIGKILL and reaps the process.
func (s *suite) kill(name string) { s.signal(name, syscall.SIGKILL) }

// stop asks for a graceful stop (SIGTERM) and reaps the process.
func (s *suite) stop(name string) { s.signal(name, syscall.SIGTERM) }

func (s *suite) signal(name string, sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.procs[name], s.waits()[name]
	delete(s.procs, name)
	delete(s.waits(), name)
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		s.t.Errorf("%s did not stop within 60s after %v", name, sig)
	}
}

// conn returns a cached client connection to a service; token "" means none.
func (s *suite) conn(name, token string) *grpc.ClientConn {
	s.t.Helper()
	key := name + "\x00" + token
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[key]; c != nil {
		return c
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.Bearer(token)))
	}
	c, err := grpc.NewClient(s.grpc[name], opts...)
	if err != nil {
		s.t.Fatalf("dial %s: %v", name, err)
	}
	s.conns[key] = c
	return c
}

func (s *suite) close() {
	s.mu.Lock()
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		s.stop(n)
	}
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	if s.t.Failed() {
		var names []string
		for _, svc := range append(append([]string{}, services...), "gateway") {
			names = append(names, s.replicaNames(svc)...)
		}
		for _, n := range names {
			if tail := s.logTail(n); tail != "" {
				s.t.Logf("%s log tail:\n%s", n, tail)
			}
		}
	}
}

// logTail returns the last lines of a process's log.
func (s *suite) logTail(name string) string {
	b, err := os.ReadFile(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// series is one sample of a Prometheus text exposition.
type series struct {
	labels string
	value  float64
}

// scrape reads the samples of one metric family from a process's /metrics.
func (s *suite) scrape(ctx context.Context, name, metric string) ([]series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metrics[name]+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("build scrape request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", name, err)
	}
	defer resp.Body.Close()
	var out []series
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out = append(out, series{labels: line[len(metric):i], value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s metrics: %w", name, err)
	}
	return out, nil
}

// rest sends one request to the gateway's REST API with token as the
// Bearer key (none when empty) and a JSON body, and returns the status and
// the body; a transport error fails the test.
func (s *suite) rest(t *testing.T, ctx context.Context, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.http+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, path, err)
	}
	return resp.StatusCode, raw
}
