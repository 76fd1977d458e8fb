package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// ServiceBacklog is how far one service is behind the logs it consumes.
type ServiceBacklog struct {
	// Service is "stages", "health", "routing" or "plays".
	Service string `json:"service"`
	// Behind is the upstream records not yet applied, over every consumer
	// and partition (and every replica of stages and health).
	Behind uint64 `json:"behind"`
	// CaughtUp says every consumer has heard its upstream's head and
	// applied up to it.
	CaughtUp bool `json:"caughtUp"`
	// Storage says what is wrong with writing the service's store ("disk
	// full since ..."); absent while writes succeed.
	Storage string `json:"storage,omitempty"`
}

// Processing is the answer of GET /v1/dashboard/status: whether the
// services are still working through records they have been sent, so
// that the numbers they answer are still moving.
type Processing struct {
	// Behind is the upstream records that some consumer has still to
	// apply, each counted once however many consumers (services, replicas)
	// read it: an event that stages, health and routing all have still to
	// read is one record behind, not three. Behind = Events + Updates.
	Behind uint64 `json:"behind"`
	// Events is the part of Behind that is ingestion's events.
	Events uint64 `json:"events"`
	// Updates is the part of Behind that the services derived and pass on
	// to each other: stage changes, scores and signals, handoffs.
	Updates uint64 `json:"updates"`
	// CaughtUp says every service has caught up.
	CaughtUp bool `json:"caughtUp"`
	// Services are stages, health, routing and (when it runs) plays, in
	// that order.
	Services []ServiceBacklog `json:"services"`
}

// SumBacklogs sums the backlogs of the services, given in the order they
// are reported. A service without a backlog is not known to have caught up.
//
// A record is behind once, whoever has still to read it: for each upstream
// log partition (a ConsumerLag's source and partition, the same for every
// consumer of it), the records behind are those after the slowest
// consumer's cursor up to the newest head any consumer has heard. A
// service's own Behind is its backlog's lag, over its own consumers.
func SumBacklogs(services []string, backlogs []*commonv1.Backlog) Processing {
	out := Processing{CaughtUp: true, Services: make([]ServiceBacklog, len(services))}
	type log struct {
		source    string
		partition uint32
	}
	type span struct{ cursor, head uint64 }
	spans := map[log]span{}
	for i, name := range services {
		b := backlogs[i]
		s := ServiceBacklog{Service: name, Behind: b.GetLag(), CaughtUp: b.GetCaughtUp(), Storage: b.GetStorage()}
		out.Services[i] = s
		out.CaughtUp = out.CaughtUp && s.CaughtUp
		for _, c := range b.GetConsumers() {
			k := log{c.GetSource(), c.GetPartition()}
			sp, seen := spans[k]
			if !seen {
				sp = span{cursor: c.GetCursor(), head: c.GetHead()}
			}
			sp.cursor = min(sp.cursor, c.GetCursor())
			sp.head = max(sp.head, c.GetHead())
			spans[k] = sp
		}
	}
	for k, sp := range spans {
		behind := sp.head - min(sp.cursor, sp.head)
		if isEvents(k.source) {
			out.Events += behind
		} else {
			out.Updates += behind
		}
	}
	out.Behind = out.Events + out.Updates
	return out
}

// isEvents reports whether a consumer's source is ingestion's event log:
// "ingestion", or "ingestion-1" for the log of ingestion replica 1
// (stream.ReplicaName).
func isEvents(source string) bool {
	rest, ok := strings.CutPrefix(source, "ingestion")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "-")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

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
		web.WriteJSON(w, http.StatusOK, SumBacklogs(processingServices[:len(backlogs)], backlogs))
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
