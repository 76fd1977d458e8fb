package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/page"
)

// fakeApp records what reached it; every call succeeds.
type fakeApp struct {
	calls []string
	actor string
}

func (f *fakeApp) ApplyPlays(_ context.Context, ws, _ string, dry bool) (*playsv1.PlaysVersion, bool, error) {
	f.calls = append(f.calls, "apply "+ws)
	return &playsv1.PlaysVersion{Workspace: ws, Version: 1}, false, nil
}
func (f *fakeApp) GetPlays(ws string) (*playsv1.GetPlaysResponse, error) {
	f.calls = append(f.calls, "get "+ws)
	return &playsv1.GetPlaysResponse{}, nil
}
func (f *fakeApp) ListTasks(ws string, _ *playsv1.ListTasksRequest, _ []byte, size int) ([]*playsv1.Task, []byte, bool, error) {
	f.calls = append(f.calls, "tasks "+ws)
	return nil, nil, false, nil
}
func (f *fakeApp) UpdateTask(_ context.Context, ws, id string, _ playsv1.TaskState, _, actor string) (*playsv1.Task, error) {
	f.calls, f.actor = append(f.calls, "update "+id), actor
	return &playsv1.Task{TaskId: id}, nil
}
func (f *fakeApp) ListFirings(ws string, _ *playsv1.ListFiringsRequest, _ []byte, _ int) ([]*playsv1.Firing, []byte, bool, error) {
	f.calls = append(f.calls, "firings "+ws)
	return nil, nil, false, nil
}
func (f *fakeApp) ListDeliveries(ws string, _ *playsv1.ListDeliveriesRequest, _ []byte, _ int) ([]*playsv1.Delivery, []byte, bool, error) {
	f.calls = append(f.calls, "deliveries "+ws)
	return nil, nil, false, nil
}
func (f *fakeApp) Redeliver(_ context.Context, ws string, ids []string, dest string) (int, error) {
	f.calls = append(f.calls, "redeliver "+ws)
	return len(ids), nil
}
func (f *fakeApp) ListDestinations(ws string) ([]*playsv1.DestinationStatus, error) {
	f.calls = append(f.calls, "destinations "+ws)
	return nil, nil
}
func (f *fakeApp) StartReplay(_ context.Context, ws string, ids []string, _ time.Time) (*playsv1.Replay, error) {
	f.calls = append(f.calls, "replay "+ws)
	return &playsv1.Replay{}, nil
}
func (f *fakeApp) GetReplay(ws, id string) (*playsv1.Replay, error) {
	f.calls = append(f.calls, "get replay "+id)
	return &playsv1.Replay{}, nil
}

// call runs a handler as the interceptors would leave it: a key of
// workspace w with the admin role, and errors mapped to statuses.
func call[Req, Resp any](s *Server, fn func(*Server, context.Context, Req) (Resp, error), req Req) error {
	ctx := auth.NewContext(context.Background(), auth.Principal{KeyID: "k1", Workspace: "w", Role: auth.RoleAdmin})
	_, err := fn(s, ctx, req)
	return apierr.Status(nil, "test", err)
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("x", apierr.MaxID+1)
	for _, tc := range []struct {
		name  string
		run   func(*Server) error
		field string // "" means the call succeeds
	}{
		{"apply without yaml", func(s *Server) error {
			return call(s, (*Server).ApplyPlays, &playsv1.ApplyPlaysRequest{})
		}, "yaml"},
		{"apply too large", func(s *Server) error {
			return call(s, (*Server).ApplyPlays, &playsv1.ApplyPlaysRequest{Yaml: strings.Repeat("#", MaxYAML+1)})
		}, "yaml"},
		{"apply", func(s *Server) error {
			return call(s, (*Server).ApplyPlays, &playsv1.ApplyPlaysRequest{Yaml: "plays: []"})
		}, ""},
		{"tasks bad account", func(s *Server) error {
			return call(s, (*Server).ListTasks, &playsv1.ListTasksRequest{AccountId: long})
		}, "account_id"},
		{"tasks bad state", func(s *Server) error {
			return call(s, (*Server).ListTasks, &playsv1.ListTasksRequest{State: 99})
		}, "state"},
		{"tasks bad page token", func(s *Server) error {
			return call(s, (*Server).ListTasks, &playsv1.ListTasksRequest{Page: &commonv1.PageRequest{PageToken: "!!"}})
		}, "page_token"},
		{"tasks", func(s *Server) error {
			return call(s, (*Server).ListTasks, &playsv1.ListTasksRequest{Page: &commonv1.PageRequest{PageToken: page.EncodeToken([]byte("k"))}})
		}, ""},
		{"update without id", func(s *Server) error {
			return call(s, (*Server).UpdateTask, &playsv1.UpdateTaskRequest{State: playsv1.TaskState_TASK_STATE_DONE})
		}, "task_id"},
		{"update to expired", func(s *Server) error {
			return call(s, (*Server).UpdateTask, &playsv1.UpdateTaskRequest{TaskId: "t_1", State: playsv1.TaskState_TASK_STATE_EXPIRED})
		}, "state"},
		{"update note too long", func(s *Server) error {
			return call(s, (*Server).UpdateTask, &playsv1.UpdateTaskRequest{TaskId: "t_1", State: playsv1.TaskState_TASK_STATE_DONE, Note: strings.Repeat("n", 2001)})
		}, "note"},
		{"update", func(s *Server) error {
			return call(s, (*Server).UpdateTask, &playsv1.UpdateTaskRequest{TaskId: "t_1", State: playsv1.TaskState_TASK_STATE_DONE})
		}, ""},
		{"firings bad play", func(s *Server) error {
			return call(s, (*Server).ListFirings, &playsv1.ListFiringsRequest{PlayId: "a\x00b"})
		}, "play_id"},
		{"deliveries bad state", func(s *Server) error {
			return call(s, (*Server).ListDeliveries, &playsv1.ListDeliveriesRequest{State: -1})
		}, "state"},
		{"redeliver nothing", func(s *Server) error {
			return call(s, (*Server).Redeliver, &playsv1.RedeliverRequest{})
		}, "delivery_ids"},
		{"redeliver too many", func(s *Server) error {
			return call(s, (*Server).Redeliver, &playsv1.RedeliverRequest{DeliveryIds: make([]string, maxRedeliver+1)})
		}, "delivery_ids"},
		{"redeliver empty id", func(s *Server) error {
			return call(s, (*Server).Redeliver, &playsv1.RedeliverRequest{DeliveryIds: []string{"msg_1", ""}})
		}, "delivery_ids"},
		{"redeliver destination", func(s *Server) error {
			return call(s, (*Server).Redeliver, &playsv1.RedeliverRequest{DestinationId: "crm"})
		}, ""},
		{"replay without plays", func(s *Server) error {
			return call(s, (*Server).StartReplay, &playsv1.StartReplayRequest{})
		}, "play_ids"},
		{"replay bad since", func(s *Server) error {
			return call(s, (*Server).StartReplay, &playsv1.StartReplayRequest{PlayIds: []string{"p"}, Since: &timestamppb.Timestamp{Seconds: -1 << 62}})
		}, "since"},
		{"replay", func(s *Server) error {
			return call(s, (*Server).StartReplay, &playsv1.StartReplayRequest{PlayIds: []string{"p"}})
		}, ""},
		{"get replay without id", func(s *Server) error {
			return call(s, (*Server).GetReplay, &playsv1.GetReplayRequest{})
		}, "replay_id"},
		{"other workspace", func(s *Server) error {
			return call(s, (*Server).GetPlays, &playsv1.GetPlaysRequest{Workspace: "rival"})
		}, "-denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{}
			err := tc.run(New(app, nil))
			switch {
			case tc.field == "":
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				if len(app.calls) != 1 {
					t.Errorf("app calls %v, want one", app.calls)
				}
			case tc.field == "-denied":
				if status.Code(err) != codes.PermissionDenied || len(app.calls) != 0 {
					t.Errorf("err = %v, calls %v; want PermissionDenied before the app", err, app.calls)
				}
			default:
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
					t.Errorf("err = %v, want InvalidArgument naming %s", err, tc.field)
				}
				if len(app.calls) != 0 {
					t.Errorf("a refused request reached the app: %v", app.calls)
				}
			}
		})
	}
}

func TestUpdateTaskActorIsTheKey(t *testing.T) {
	app := &fakeApp{}
	if err := call(New(app, nil), (*Server).UpdateTask, &playsv1.UpdateTaskRequest{TaskId: "t_1", State: playsv1.TaskState_TASK_STATE_SKIPPED}); err != nil {
		t.Fatal(err)
	}
	if app.actor != "key k1" {
		t.Errorf("actor %q, want the caller's key id", app.actor)
	}
}

func TestPolicyListsEveryMethod(t *testing.T) {
	if err := auth.CheckPolicy(Policy(), &playsv1.PlaysService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}
