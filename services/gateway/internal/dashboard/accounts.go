package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Clients are the service connections the accounts report reads.
type Clients struct {
	Stages  grpc.ClientConnInterface
	Health  grpc.ClientConnInterface
	Routing grpc.ClientConnInterface
	// Plays is nil when the deployment runs no plays service.
	Plays grpc.ClientConnInterface
}

// pageSize is the largest page every list RPC serves (pkg/page.MaxSize).
const pageSize = 1000

// historyCalls bounds the health history calls in flight for one trend.
const historyCalls = 16

// maxPages bounds the pages read from one list, so a report cannot loop
// on a server that keeps returning a page token.
const maxPages = 1000

// Accounts serves GET /v1/dashboard/accounts: one page of the account
// grid (every account with its status, stage, health, ARR, renewal and
// owner, filtered, sorted and paged as Query says), the total that match,
// and the portfolio of the paying ones (Report); with format=csv, every
// matching row as CSV. The caller's key is forwarded with every call, so
// the services authorize it as for any REST call. The joined rows are
// kept between requests (Snapshots) until the services' state moves.
func Accounts(c Clients, now func() time.Time) http.Handler {
	cache := &Snapshots{Now: now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "GET /v1/dashboard/accounts")
		q, err := ParseQuery(r.URL.Query())
		if err != nil {
			fe := err.(*FieldError)
			web.WriteFieldError(w, r, fe.Field, fe.Problem)
			return
		}
		ctx := outgoing(r)
		g, err := loadGrid(ctx, c, cache, r.Header.Get("Authorization"), now)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		at := now().UTC()
		if q.CSV {
			writeCSV(w, g.match(&q, at), at)
			return
		}
		web.WriteJSON(w, http.StatusOK, g.page(&q, at))
	})
}

// loadGrid is the caller's snapshot of the joined report, rebuilt when the
// services' state has moved since it was built.
func loadGrid(ctx context.Context, c Clients, cache *Snapshots, authorization string, now func() time.Time) (*grid, error) {
	fp, err := Fingerprint(ctx, c)
	if err != nil {
		return nil, err
	}
	v, _, err := cache.get(cacheKey("accounts", authorization), fp, func() (any, error) {
		in, err := fetch(ctx, c)
		if err != nil {
			return nil, err
		}
		return newGrid(Build(now(), in)), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*grid), nil
}

// outgoing forwards the caller's key and the request id with every call
// made for r, as the REST facade does.
func outgoing(r *http.Request) context.Context {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	if id := web.RequestID(r.Context()); id != "" {
		md.Set("x-request-id", id)
	}
	return metadata.NewOutgoingContext(r.Context(), md)
}

// fetch reads the inputs of a report: the four lists at once, then the
// traits of every listed account.
func fetch(ctx context.Context, c Clients) (Inputs, error) {
	var (
		in   Inputs
		wg   sync.WaitGroup
		errs = make([]error, 4)
	)
	stages := stagesv1.NewStagesServiceClient(c.Stages)
	health := healthv1.NewHealthServiceClient(c.Health)
	routing := routingv1.NewRoutingServiceClient(c.Routing)
	wg.Go(func() { in.Journey, errs[0] = journeyAccounts(ctx, stages, false) })
	wg.Go(func() {
		in.Health, errs[1] = pages(func(p *commonv1.PageRequest) ([]*healthv1.AccountRow, *commonv1.PageResponse, error) {
			resp, err := health.ListAccounts(ctx, &healthv1.ListAccountsRequest{Page: p})
			return resp.GetAccounts(), resp.GetPage(), err
		}, "list health accounts")
	})
	wg.Go(func() { in.Owners, errs[2] = listOwners(ctx, routing) })
	wg.Go(func() { in.Assignments, errs[3] = assignments(ctx, routing) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Inputs{}, err
		}
	}
	in.Traits = accountTraits(in.Journey)
	return in, nil
}

// everyStatus lists every account status, churned included: reports count
// each account whatever its status.
var everyStatus = []commonv1.AccountStatus{commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL,
	commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED}

// journeyAccounts lists every account of stages, with milestones when asked
// (the KPIs need them; the account report does not).
func journeyAccounts(ctx context.Context, stages stagesv1.StagesServiceClient, milestones bool) ([]*stagesv1.AccountSummary, error) {
	return journeyAccountsIn(ctx, stages, everyStatus, milestones)
}

// journeyAccountsIn lists the accounts of stages whose status is one of
// statuses.
func journeyAccountsIn(ctx context.Context, stages stagesv1.StagesServiceClient, statuses []commonv1.AccountStatus, milestones bool) ([]*stagesv1.AccountSummary, error) {
	return pages(func(p *commonv1.PageRequest) ([]*stagesv1.AccountSummary, *commonv1.PageResponse, error) {
		resp, err := stages.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Status: statuses, Milestones: milestones, Page: p})
		return resp.GetAccounts(), resp.GetPage(), err
	}, "list journey accounts")
}

// listOwners lists every owner of routing.
func listOwners(ctx context.Context, routing routingv1.RoutingServiceClient) ([]*routingv1.Owner, error) {
	return pages(func(p *commonv1.PageRequest) ([]*routingv1.Owner, *commonv1.PageResponse, error) {
		resp, err := routing.ListOwners(ctx, &routingv1.ListOwnersRequest{Page: p})
		return resp.GetOwners(), resp.GetPage(), err
	}, "list owners")
}

// assignments lists every assignment of routing.
func assignments(ctx context.Context, routing routingv1.RoutingServiceClient) ([]*routingv1.Assignment, error) {
	return pages(func(p *commonv1.PageRequest) ([]*routingv1.Assignment, *commonv1.PageResponse, error) {
		resp, err := routing.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Page: p})
		return resp.GetAssignments(), resp.GetPage(), err
	}, "list assignments")
}

// pages reads every page of one list.
func pages[T any](list func(*commonv1.PageRequest) ([]T, *commonv1.PageResponse, error), what string) ([]T, error) {
	var out []T
	token := ""
	for range maxPages {
		items, p, err := list(&commonv1.PageRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, items...)
		token = p.GetNextPageToken()
		if token == "" {
			return out, nil
		}
	}
	return out, fmt.Errorf("%s: more than %d pages", what, maxPages)
}

// accountTraits gives each listed account's traits (its plan, and owners
// set in the CRM), which the stages list carries: one call per account
// would not scale past a few thousand accounts.
func accountTraits(accounts []*stagesv1.AccountSummary) map[string]map[string]string {
	out := make(map[string]map[string]string, len(accounts))
	for _, a := range accounts {
		out[a.GetAccountId()] = a.GetTraits()
	}
	return out
}
