package app

import (
	"context"
	"sync"
	"time"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/hours"
	pstore "github.com/cairn-dev/cairn/pkg/store"
)

// Directory holds the business-hours calendars of each workspace's
// owners, read from routing's directory, so that a task's due date counts
// its owner's working time ("due: 4h" given on Friday at 16:00 in Berlin
// is due on Monday at 12:00). An owner it does not know gets calendar
// time. Safe for concurrent use.
type Directory struct {
	mu    sync.RWMutex
	cals  map[string]map[string]*hours.Calendar
	zones hours.Zones
}

// NewDirectory returns an empty Directory.
func NewDirectory() *Directory {
	return &Directory{cals: map[string]map[string]*hours.Calendar{}}
}

// Calendar returns an owner's calendar, or nil when the owner is unknown.
func (d *Directory) Calendar(ws, owner string) *hours.Calendar {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cals[ws][owner]
}

// Set replaces a workspace's owners. An owner whose hours do not build
// (an unknown zone) is left out and gets calendar time.
func (d *Directory) Set(ws string, owners []*routingv1.Owner) {
	cals := make(map[string]*hours.Calendar, len(owners))
	for _, o := range owners {
		if c, err := hours.ForOwner(o, d.zones.Load); err == nil {
			cals[o.GetOwnerId()] = c
		}
	}
	d.mu.Lock()
	d.cals[ws] = cals
	d.mu.Unlock()
}

// directoryRefresh is how often the owners are read again.
const directoryRefresh = time.Minute

// RunDirectory reads the owners of every workspace with plays from
// routing (each of its replicas: a workspace's owners are on one), now and
// then every minute, until ctx ends. A failed read keeps what was read
// before.
func (s *Service) RunDirectory(ctx context.Context, clients []routingv1.RoutingServiceClient) error {
	for {
		s.refreshDirectory(ctx, clients)
		select {
		case <-ctx.Done():
			return nil
		case <-s.clk.After(directoryRefresh):
		}
	}
}

func (s *Service) refreshDirectory(ctx context.Context, clients []routingv1.RoutingServiceClient) {
	var wss []string
	if err := s.db.View(func(tx *pstore.Tx) error {
		var err error
		wss, err = activeWorkspaces(tx)
		return err
	}); err != nil {
		s.logger.Warn("plays: directory", "err", err)
		return
	}
	for _, ws := range wss {
		for _, c := range clients {
			owners, err := listOwners(ctx, c, ws)
			if err != nil {
				continue // another replica's workspace, or routing is down
			}
			s.directory.Set(ws, owners)
			break
		}
	}
}

func listOwners(ctx context.Context, c routingv1.RoutingServiceClient, ws string) ([]*routingv1.Owner, error) {
	var out []*routingv1.Owner
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.ListOwners(cctx, &routingv1.ListOwnersRequest{Workspace: ws, Page: &commonv1.PageRequest{PageSize: 1000, PageToken: token}})
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetOwners()...)
		if token = resp.GetPage().GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}
