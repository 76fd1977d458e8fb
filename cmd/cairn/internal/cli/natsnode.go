package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/cairn-dev/cairn/cmd/cairn/internal/natsnode"
)

// runNATSNode is the hidden `cairn nats-node`: one embedded NATS JetStream
// server in this process, which `cairn run --cluster` starts three times
// and supervises like the services.
func runNATSNode(ctx context.Context, env *Env, args []string) error {
	fs := helpFlagSet(env, "nats-node", "nats-node --name n0 --port 7121 --cluster-port 7124 --routes nats://127.0.0.1:7124,... --store DIR")
	var c natsnode.Config
	var routes string
	fs.StringVar(&c.Name, "name", "", "server name, unique in the cluster")
	fs.StringVar(&c.Cluster, "cluster", "cairn", "cluster name, the same on every node")
	fs.StringVar(&c.Host, "host", "127.0.0.1", "address every listener binds")
	fs.IntVar(&c.Port, "port", 0, "client port")
	fs.IntVar(&c.ClusterPort, "cluster-port", 0, "route port the peers connect to")
	fs.IntVar(&c.MonitorPort, "monitor-port", 0, "HTTP monitoring port (/healthz, /jsz); 0: none")
	fs.StringVar(&routes, "routes", "", "the peers' route URLs, comma-separated")
	fs.StringVar(&c.StoreDir, "store", "", "JetStream store directory")
	fs.Int64Var(&c.MaxStore, "max-store", 4<<30, "bytes the file store may hold")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if routes != "" {
		c.Routes = strings.Split(routes, ",")
	}
	c.Log = env.Stderr
	if _, err := c.Options(); err != nil {
		return usagef("%v", err)
	}
	return natsnode.Run(ctx, c, func() {
		fmt.Fprintf(env.Stdout, "nats node %s: clients on %s:%d, routes on %s:%d, JetStream in %s (sync always)\n", c.Name, c.Host, c.Port, c.Host, c.ClusterPort, c.StoreDir)
	})
}
