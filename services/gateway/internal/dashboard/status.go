package dashboard

import (
	"context"
	"net/http"
	"sync"

	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	pkgserver "github.com/cairn-dev/cairn/pkg/server"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// processingServices are the services that consume logs, in the order
// Status reports them; plays comes last, when the gateway has it.
var processingServices = []string{"stages", "health", "routing", "plays"}

// Status serves GET /v1/dashboard/status from the GetStatus RPC of stages,
// health and routing, asked at once with the caller's key. The gateway's
// routers ask every replica of stages and health and add up their
// backlogs; routing's replica is the caller's workspace's. Any failure is
// the answer, as a google.rpc.Status naming the service.
func Status(c Clients) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "GET /v1/dashboard/status")
		backlogs, err := fetchBacklogs(outgoing(r), c)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, pkgserver.SumBacklogs(processingServices[:len(backlogs)], backlogs))
	})
}

// fetchBacklogs asks the services for their backlogs, in the order
// of processingServices.
func fetchBacklogs(ctx context.Context, c Clients) ([]*commonv1.Backlog, error) {
	calls := []func() (*commonv1.Backlog, error){
		func() (*commonv1.Backlog, error) {
			resp, err := stagesv1.NewStagesServiceClient(c.Stages).GetStatus(ctx, &stagesv1.GetStatusRequest{})
			return resp.GetBacklog(), err
		},
		func() (*commonv1.Backlog, error) {
			resp, err := healthv1.NewHealthServiceClient(c.Health).GetStatus(ctx, &healthv1.GetStatusRequest{})
			return resp.GetBacklog(), err
		},
		func() (*commonv1.Backlog, error) {
			resp, err := routingv1.NewRoutingServiceClient(c.Routing).GetStatus(ctx, &routingv1.GetStatusRequest{})
			return resp.GetBacklog(), err
		},
	}
	if c.Plays != nil {
		// Plays' tasks and messages move while it works through the
		// derived logs too.
		calls = append(calls, func() (*commonv1.Backlog, error) {
			resp, err := playsv1.NewPlaysServiceClient(c.Plays).GetStatus(ctx, &playsv1.GetStatusRequest{})
			return resp.GetBacklog(), err
		})
	}
	var wg sync.WaitGroup
	out := make([]*commonv1.Backlog, len(calls))
	errs := make([]error, len(calls))
	for i, call := range calls {
		wg.Go(func() { out[i], errs[i] = call() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, serviceError(processingServices[i], err)
		}
	}
	return out, nil
}

// serviceError keeps the code and details of err and names the service
// ("health status: ..."); wrapping it would put grpc's "rpc error: code =
// ..." text in the message.
func serviceError(service string, err error) error {
	st := status.Convert(err).Proto()
	st.Message = service + " status: " + st.GetMessage()
	return status.FromProto(st).Err()
}
