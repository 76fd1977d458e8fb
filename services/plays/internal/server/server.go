// Package server is the plays service's gRPC edge: it validates
// cairn.plays.v1 requests (field errors through apierr) and calls the
// application (App, implemented by internal/app), whose errors it returns
// as they are: pkg/server's interceptor maps them to statuses once.
package server

import (
	"context"
	"fmt"
	"time"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/methods"
	"github.com/cairn-dev/cairn/pkg/page"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// MaxYAML bounds a plays file (the play package refuses larger ones with
// the same limit, naming it).
const MaxYAML = 1 << 20

// maxRedeliver bounds the ids of one Redeliver call.
const maxRedeliver = 1000

// Policy is the minimum role of every method (pkg/methods).
func Policy() auth.Policy { return methods.Policy(methods.Plays) }

// App is the plays application the server calls.
type App interface {
	ApplyPlays(ctx context.Context, ws, yaml string, dryRun bool) (*playsv1.PlaysVersion, bool, error)
	GetPlays(ws string) (*playsv1.GetPlaysResponse, error)
	ListTasks(ws string, req *playsv1.ListTasksRequest, after []byte, size int) ([]*playsv1.Task, []byte, bool, error)
	UpdateTask(ctx context.Context, ws, id string, state playsv1.TaskState, note, actor string) (*playsv1.Task, error)
	ListFirings(ws string, req *playsv1.ListFiringsRequest, after []byte, size int) ([]*playsv1.Firing, []byte, bool, error)
	ListDeliveries(ws string, req *playsv1.ListDeliveriesRequest, after []byte, size int) ([]*playsv1.Delivery, []byte, bool, error)
	Redeliver(ctx context.Context, ws string, ids []string, destination string) (int, error)
	ListDestinations(ws string) ([]*playsv1.DestinationStatus, error)
	StartReplay(ctx context.Context, ws string, playIDs []string, since time.Time) (*playsv1.Replay, error)
	GetReplay(ws, id string) (*playsv1.Replay, error)
}

// Server implements playsv1.PlaysServiceServer.
type Server struct {
	playsv1.UnimplementedPlaysServiceServer
	app App
	lag func() []stream.Lag
}

// New returns a Server over app; lag reports the consumers' lag for
// GetStatus.
func New(app App, lag func() []stream.Lag) *Server { return &Server{app: app, lag: lag} }

// ApplyPlays validates and stores a plays file.
func (s *Server) ApplyPlays(ctx context.Context, req *playsv1.ApplyPlaysRequest) (*playsv1.ApplyPlaysResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if req.GetYaml() == "" {
		return nil, apierr.Field("yaml", "required: the plays file")
	}
	if len(req.GetYaml()) > MaxYAML {
		return nil, apierr.Field("yaml", "file is %d bytes; the limit is 1 MiB", len(req.GetYaml()))
	}
	v, unchanged, err := s.app.ApplyPlays(ctx, ws, req.GetYaml(), req.GetDryRun())
	if err != nil {
		return nil, err
	}
	return &playsv1.ApplyPlaysResponse{Plays: v, Unchanged: unchanged}, nil
}

// GetPlays returns the active plays file.
func (s *Server) GetPlays(ctx context.Context, req *playsv1.GetPlaysRequest) (*playsv1.GetPlaysResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	return s.app.GetPlays(ws)
}

// ListTasks pages tasks.
func (s *Server) ListTasks(ctx context.Context, req *playsv1.ListTasksRequest) (*playsv1.ListTasksResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"account_id": req.GetAccountId(), "owner_id": req.GetOwnerId()} {
		if err := apierr.CheckID(f, v, false); err != nil {
			return nil, err
		}
	}
	if _, ok := playsv1.TaskState_name[int32(req.GetState())]; !ok {
		return nil, apierr.Field("state", "unknown task state %d", req.GetState())
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListTasks(ws, req, after, size)
	if err != nil {
		return nil, err
	}
	return &playsv1.ListTasksResponse{Tasks: items, Page: page.Response(last, more, -1)}, nil
}

// UpdateTask closes or reopens a task.
func (s *Server) UpdateTask(ctx context.Context, req *playsv1.UpdateTaskRequest) (*playsv1.UpdateTaskResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("task_id", req.GetTaskId(), true); err != nil {
		return nil, err
	}
	switch req.GetState() {
	case playsv1.TaskState_TASK_STATE_DONE, playsv1.TaskState_TASK_STATE_SKIPPED, playsv1.TaskState_TASK_STATE_OPEN:
	default:
		return nil, apierr.Field("state", "must be TASK_STATE_DONE, TASK_STATE_SKIPPED or TASK_STATE_OPEN")
	}
	if len(req.GetNote()) > 2000 {
		return nil, apierr.Field("note", "is %d bytes; the limit is 2000", len(req.GetNote()))
	}
	actor := "unknown"
	if k, ok := auth.FromContext(ctx); ok {
		actor = "key " + k.KeyID
	}
	k, err := s.app.UpdateTask(ctx, ws, req.GetTaskId(), req.GetState(), req.GetNote(), actor)
	if err != nil {
		return nil, err
	}
	return &playsv1.UpdateTaskResponse{Task: k}, nil
}

// ListFirings pages the plays that fired.
func (s *Server) ListFirings(ctx context.Context, req *playsv1.ListFiringsRequest) (*playsv1.ListFiringsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"account_id": req.GetAccountId(), "play_id": req.GetPlayId()} {
		if err := apierr.CheckID(f, v, false); err != nil {
			return nil, err
		}
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListFirings(ws, req, after, size)
	if err != nil {
		return nil, err
	}
	return &playsv1.ListFiringsResponse{Firings: items, Page: page.Response(last, more, -1)}, nil
}

// ListDeliveries pages the delivery log.
func (s *Server) ListDeliveries(ctx context.Context, req *playsv1.ListDeliveriesRequest) (*playsv1.ListDeliveriesResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"account_id": req.GetAccountId(), "destination_id": req.GetDestinationId()} {
		if err := apierr.CheckID(f, v, false); err != nil {
			return nil, err
		}
	}
	if _, ok := playsv1.DeliveryState_name[int32(req.GetState())]; !ok {
		return nil, apierr.Field("state", "unknown delivery state %d", req.GetState())
	}
	size, after, err := page.Bounds(req.GetPage())
	if err != nil {
		return nil, err
	}
	items, last, more, err := s.app.ListDeliveries(ws, req, after, size)
	if err != nil {
		return nil, err
	}
	return &playsv1.ListDeliveriesResponse{Deliveries: items, Page: page.Response(last, more, -1)}, nil
}

// Redeliver queues dead deliveries again.
func (s *Server) Redeliver(ctx context.Context, req *playsv1.RedeliverRequest) (*playsv1.RedeliverResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if len(req.GetDeliveryIds()) == 0 && req.GetDestinationId() == "" {
		return nil, apierr.Field("delivery_ids", "name the deliveries, or set destination_id to redeliver all of its dead deliveries")
	}
	if len(req.GetDeliveryIds()) > maxRedeliver {
		return nil, apierr.Field("delivery_ids", "%d ids; the limit is %d", len(req.GetDeliveryIds()), maxRedeliver)
	}
	for i, id := range req.GetDeliveryIds() {
		if err := apierr.CheckID("delivery_ids", id, true); err != nil {
			return nil, apierr.Field("delivery_ids", "[%d]: %v", i, err)
		}
	}
	if err := apierr.CheckID("destination_id", req.GetDestinationId(), false); err != nil {
		return nil, err
	}
	n, err := s.app.Redeliver(ctx, ws, req.GetDeliveryIds(), req.GetDestinationId())
	if err != nil {
		return nil, err
	}
	return &playsv1.RedeliverResponse{Queued: int32(n)}, nil
}

// ListDestinations reports every destination's figures.
func (s *Server) ListDestinations(ctx context.Context, req *playsv1.ListDestinationsRequest) (*playsv1.ListDestinationsResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	ds, err := s.app.ListDestinations(ws)
	if err != nil {
		return nil, err
	}
	return &playsv1.ListDestinationsResponse{Destinations: ds}, nil
}

// maxReplayPlays bounds the plays of one replay (a file has at most 200).
const maxReplayPlays = 200

// StartReplay starts replaying plays over the history.
func (s *Server) StartReplay(ctx context.Context, req *playsv1.StartReplayRequest) (*playsv1.StartReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if len(req.GetPlayIds()) == 0 {
		return nil, apierr.Field("play_ids", "required: the plays to replay over the history")
	}
	if len(req.GetPlayIds()) > maxReplayPlays {
		return nil, apierr.Field("play_ids", "%d ids; the limit is %d", len(req.GetPlayIds()), maxReplayPlays)
	}
	for i, id := range req.GetPlayIds() {
		if err := apierr.CheckID(fmt.Sprintf("play_ids[%d]", i), id, true); err != nil {
			return nil, err
		}
	}
	var since time.Time
	if t := req.GetSince(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, apierr.Field("since", "not a valid timestamp: %v", err)
		}
		since = t.AsTime()
	}
	r, err := s.app.StartReplay(ctx, ws, req.GetPlayIds(), since)
	if err != nil {
		return nil, err
	}
	return &playsv1.StartReplayResponse{Replay: r}, nil
}

// GetReplay returns a replay.
func (s *Server) GetReplay(ctx context.Context, req *playsv1.GetReplayRequest) (*playsv1.GetReplayResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := apierr.CheckID("replay_id", req.GetReplayId(), true); err != nil {
		return nil, err
	}
	r, err := s.app.GetReplay(ws, req.GetReplayId())
	if err != nil {
		return nil, err
	}
	return &playsv1.GetReplayResponse{Replay: r}, nil
}

// GetStatus reports how far the service is behind the logs it consumes.
func (s *Server) GetStatus(ctx context.Context, req *playsv1.GetStatusRequest) (*playsv1.GetStatusResponse, error) {
	b, err := pkgserver.Status(ctx, req.GetWorkspace(), s.lag)
	if err != nil {
		return nil, err
	}
	return &playsv1.GetStatusResponse{Backlog: b}, nil
}
