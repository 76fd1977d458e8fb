// Package natsnode runs one NATS JetStream server, embedded as a library,
// configured the way ADR 0021 requires of a Cairn cluster: JetStream on
// file storage with sync_interval: always (so a quorum acknowledgement
// means fsynced on a quorum of disks), clustered with its peers over
// routes. `cairn nats-node` runs one in its own process, so that `cairn
// run --cluster` and the reliability tests supervise, kill and restart
// each node like any other child.
package natsnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config is one node of a loopback cluster.
type Config struct {
	// Name is the server's name, unique in the cluster (n0, n1, n2).
	Name string
	// Cluster names the cluster; every node must use the same one.
	Cluster string
	// Host is the address every listener binds (127.0.0.1).
	Host string
	// Port is the client port (-nats-url).
	Port int
	// ClusterPort is the route port the peers connect to.
	ClusterPort int
	// MonitorPort serves /healthz and /jsz (0: none).
	MonitorPort int
	// Routes are the peers' route URLs (nats://host:clusterport); a node
	// may list itself.
	Routes []string
	// StoreDir holds the node's JetStream files.
	StoreDir string
	// MaxStore bounds the file store (default 4 GiB).
	MaxStore int64
	// Log receives the server's warnings and errors, one line each
	// (nil: none). Notices are dropped: a starting node prints some forty
	// lines of banner, which would drown the suite's output.
	Log io.Writer
}

// Options converts c into the server's options.
func (c Config) Options() (*server.Options, error) {
	switch {
	case c.Name == "":
		return nil, errors.New("--name: required")
	case c.StoreDir == "":
		return nil, errors.New("--store: required")
	case c.Port <= 0 || c.Port > 65535:
		return nil, fmt.Errorf("--port: %d is not a port", c.Port)
	case c.ClusterPort <= 0 || c.ClusterPort > 65535:
		return nil, fmt.Errorf("--cluster-port: %d is not a port", c.ClusterPort)
	case c.MonitorPort < 0 || c.MonitorPort > 65535:
		return nil, fmt.Errorf("--monitor-port: %d is not a port", c.MonitorPort)
	}
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	cluster := c.Cluster
	if cluster == "" {
		cluster = "cairn"
	}
	maxStore := c.MaxStore
	if maxStore <= 0 {
		maxStore = 4 << 30
	}
	routes := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats" || u.Port() == "" {
			return nil, fmt.Errorf("--routes: %q is not a nats://host:port URL", r)
		}
		routes = append(routes, r)
	}
	opts := &server.Options{
		ServerName: c.Name,
		Host:       host,
		Port:       c.Port,
		HTTPHost:   host,
		HTTPPort:   c.MonitorPort,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		// sync_interval: always. Without it a quorum acknowledgement
		// means "in the page cache of two servers" (ADR 0021).
		SyncAlways:         true,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  maxStore,
		Cluster: server.ClusterOpts{
			Name: cluster,
			Host: host,
			Port: c.ClusterPort,
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		NoLog:  c.Log == nil,
		// The process's own signal handling (cairn's main) stops the
		// node; the server must not install handlers of its own.
		NoSigs: true,
	}
	return opts, nil
}

// Run starts the node and serves until ctx ends, then shuts it down. It
// returns an error when the node cannot start or stops on its own.
func Run(ctx context.Context, c Config, ready func()) error {
	opts, err := c.Options()
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats node %s: %w", c.Name, err)
	}
	if c.Log != nil {
		srv.SetLogger(lineLogger{w: c.Log}, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("nats node %s: not accepting connections on %s within 30s", c.Name, net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
	}
	if ready != nil {
		ready()
	}
	stopped := make(chan struct{})
	go func() { srv.WaitForShutdown(); close(stopped) }()
	select {
	case <-ctx.Done():
		srv.Shutdown()
		<-stopped
		return nil
	case <-stopped:
		return fmt.Errorf("nats node %s: the server stopped on its own", c.Name)
	}
}

// lineLogger writes the server's warnings and errors as lines.
type lineLogger struct{ w io.Writer }

func (l lineLogger) line(level, format string, v []any) {
	fmt.Fprintf(l.w, "[%s] %s\n", level, fmt.Sprintf(format, v...))
}

func (lineLogger) Noticef(string, ...any)           {}
func (lineLogger) Debugf(string, ...any)            {}
func (lineLogger) Tracef(string, ...any)            {}
func (l lineLogger) Warnf(format string, v ...any)  { l.line("WRN", format, v) }
func (l lineLogger) Errorf(format string, v ...any) { l.line("ERR", format, v) }
func (l lineLogger) Fatalf(format string, v ...any) { l.line("FTL", format, v) }
