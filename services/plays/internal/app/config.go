package app

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
)

// Config is the plays process's configuration, from flags or CAIRN_*
// variables (server.ParseFlags: the flag wins).
type Config struct {
	// Server holds the flags shared by every service.
	Server server.Config
	// StagesAddr, HealthAddr and RoutingAddr are the upstream logs
	// (-stages-addr, -health-addr, -routing-addr); empty disables the
	// consumer.
	StagesAddr, HealthAddr, RoutingAddr string
	// AllowPrivate lets destinations resolve to loopback, private and
	// link-local addresses (-allow-private-destinations). Off by default:
	// a plays file must not turn Cairn into a way into the network it
	// runs in.
	AllowPrivate bool
	// Allow lists address ranges allowed although private
	// (-allow-destinations, comma-separated CIDRs).
	Allow []netip.Prefix
	// DashboardURL is the base of the account links in messages
	// (-dashboard-url).
	DashboardURL string
	// Horizon is how long a delivery is retried before it goes to the
	// dead-letter list (-delivery-horizon).
	Horizon time.Duration
	// TaskExpiry is how long an open task may stay past due
	// (-task-expiry).
	TaskExpiry time.Duration
}

// Parse reads the command line and the environment (CAIRN_<FLAG>) into a
// Config. Plays is split by workspace, like routing: replica k of
// -replicas K keeps the workspaces with stream.WorkspaceReplica == k.
func Parse(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Server: server.Config{Name: "plays", ByWorkspace: true}}
	f := server.NewFlags("plays", &cfg.Server)
	f.Upstream(&cfg.StagesAddr, "stages", false)
	f.Upstream(&cfg.HealthAddr, "health", false)
	f.Upstream(&cfg.RoutingAddr, "routing", false)
	f.BoolVar(&cfg.AllowPrivate, "allow-private-destinations", false, "let webhook and Slack destinations be loopback, private or link-local addresses")
	var allow string
	f.StringVar(&allow, "allow-destinations", "", "comma-separated CIDRs allowed as destinations although private, e.g. 10.1.0.0/16")
	f.StringVar(&cfg.DashboardURL, "dashboard-url", "http://127.0.0.1:8080", "base URL of the dashboard, for the account links in messages")
	f.DurationVar(&cfg.Horizon, "delivery-horizon", 24*time.Hour, "how long a delivery is retried before it is dead-lettered")
	f.DurationVar(&cfg.TaskExpiry, "task-expiry", 14*24*time.Hour, "how long an open task may stay past its due date before it expires")
	f.Check(func() error {
		for _, s := range strings.Split(allow, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("-allow-destinations: %q is not a CIDR: %w", s, err)
			}
			cfg.Allow = append(cfg.Allow, p)
		}
		if cfg.Horizon < time.Minute {
			return fmt.Errorf("-delivery-horizon: %s is less than a minute", cfg.Horizon)
		}
		if cfg.TaskExpiry < time.Hour {
			return fmt.Errorf("-task-expiry: %s is less than an hour", cfg.TaskExpiry)
		}
		return nil
	})
	return cfg, f.Parse(args, getenv)
}

// policy is the destination address policy of cfg.
func (c Config) policy() deliver.Policy {
	return deliver.Policy{AllowPrivate: c.AllowPrivate, Allow: c.Allow}
}
