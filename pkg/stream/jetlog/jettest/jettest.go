// Package jettest runs a NATS JetStream cluster inside a test process: n
// nats-server nodes on loopback, each with its own store directory, with
// sync_interval: always, so that jetlog can be tested against the real
// engine, including losing a node and its disk. Only tests import it; it
// is the one place nats-server is linked.
package jettest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cairn-dev/cairn/pkg/testport"
)

// Account is the account streams live in when the servers run without
// accounts configured.
const Account = "$G"

// Cluster is an in-process JetStream cluster on loopback.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// Node is one server of the cluster.
type Node struct {
	Name string
	// Dir is the node's JetStream store directory.
	Dir  string
	opts *server.Options
	Srv  *server.Server
}

// Start starts n nodes (3 for R3 streams) and waits for the cluster to
// elect its meta leader. When the servers cannot start here (no ports, no
// disk), the test is skipped, saying why; everything stops when the test
// ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	base := testport.Base(t, 2*n)
	var routes []*url.URL
	for i := range n {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", base+n+1+i)})
	}
	root := t.TempDir()
	c := &Cluster{t: t}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		nd := &Node{Name: name, Dir: filepath.Join(root, name), opts: &server.Options{
			ServerName:         name,
			Host:               "127.0.0.1",
			Port:               base + 1 + i,
			JetStream:          true,
			StoreDir:           filepath.Join(root, name),
			SyncAlways:         true,
			JetStreamMaxMemory: 64 << 20,
			JetStreamMaxStore:  4 << 30,
			Cluster: server.ClusterOpts{
				Name: "cairn-test",
				Host: "127.0.0.1",
				Port: base + n + 1 + i,
			},
			Routes: routes,
			NoLog:  os.Getenv("CAIRN_NATS_LOG") == "",
			NoSigs: true,
		}}
		c.Nodes = append(c.Nodes, nd)
	}
	t.Cleanup(c.StopAll)
	for i := range c.Nodes {
		if err := c.start(i); err != nil {
			t.Skipf("jettest: the NATS cluster cannot start on loopback here: %v", err)
		}
	}
	if err := c.WaitMeta(30 * time.Second); err != nil {
		t.Skipf("jettest: the NATS cluster did not elect a meta leader: %v", err)
	}
	return c
}

func (c *Cluster) start(i int) error {
	nd := c.Nodes[i]
	opts := *nd.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("node %s: %w", nd.Name, err)
	}
	if !opts.NoLog {
		srv.ConfigureLogger()
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("node %s: not ready for connections within 20s", nd.Name)
	}
	nd.Srv = srv
	return nil
}

// URLs is the client URL of every node, comma-separated (the -nats-url
// form).
func (c *Cluster) URLs() string {
	var u []string
	for _, nd := range c.Nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return strings.Join(u, ",")
}

// Connect connects a client to every node's URL, reconnecting forever;
// it closes when the test ends.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("jettest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitMeta waits until the JetStream meta leader counts every running
// node as a current peer, so that R3 streams can be placed.
func (c *Cluster) WaitMeta(within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		running := 0
		for _, nd := range c.Nodes {
			if nd.Srv != nil {
				running++
			}
		}
		for _, nd := range c.Nodes {
			if nd.Srv != nil && nd.Srv.JetStreamIsLeader() && len(nd.Srv.JetStreamClusterPeers()) >= running {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no meta leader with every node as a peer within %s", within)
}

// StreamLeader returns the index of the node leading stream, -1 if none
// does now.
func (c *Cluster) StreamLeader(stream string) int {
	for i, nd := range c.Nodes {
		if nd.Srv != nil && nd.Srv.JetStreamIsStreamLeader(Account, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until some node leads stream and returns it.
func (c *Cluster) WaitStreamLeader(stream string, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if i := c.StreamLeader(stream); i >= 0 {
			return i, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, fmt.Errorf("stream %s has no leader within %s", stream, within)
}

// Stop shuts node i down (its store stays).
func (c *Cluster) Stop(i int) {
	if nd := c.Nodes[i]; nd.Srv != nil {
		nd.Srv.Shutdown()
		nd.Srv.WaitForShutdown()
		nd.Srv = nil
	}
}

// Wipe removes node i's store directory; the node must be stopped.
func (c *Cluster) Wipe(i int) error {
	if c.Nodes[i].Srv != nil {
		return fmt.Errorf("jettest: wipe node %s while it runs", c.Nodes[i].Name)
	}
	return os.RemoveAll(c.Nodes[i].Dir)
}

// Restart starts node i again on the same ports and directory.
func (c *Cluster) Restart(i int) error { return c.start(i) }

// StopAll shuts every node down.
func (c *Cluster) StopAll() {
	for i := range c.Nodes {
		c.Stop(i)
	}
}
