package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Trend bounds: the days a trend may cover, and how far before its first
// day a history is read so that an account whose band did not change for a
// while still has a band on that day.
const (
	defaultTrendDays = 90
	maxTrendDays     = 365
	trendLookback    = 60 * 24 * time.Hour
)

// TrendDay is the paying customers' health on one day.
type TrendDay struct {
	Day       string  `json:"day"` // YYYY-MM-DD, UTC
	Healthy   int     `json:"healthy"`
	Neutral   int     `json:"neutral"`
	AtRisk    int     `json:"atRisk"`
	AtRiskARR float64 `json:"atRiskArr"`
	AvgScore  float64 `json:"avgScore"`
}

// TrendReport is the answer of GET /v1/dashboard/health-trend.
type TrendReport struct {
	AsOf     time.Time  `json:"asOf"`
	Accounts int        `json:"accounts"`
	Days     []TrendDay `json:"days"`
}

// BuildTrend counts, for each of the days ending with last, the accounts in
// each band on that day: an account's band on a day is that of its latest
// snapshot on or before it (snapshots are kept on the days a score was
// computed, so days between them carry the earlier one). An account with
// no snapshot yet on a day is not counted that day. ARR is today's.
func BuildTrend(last time.Time, days int, history map[string][]*healthv1.Snapshot, arr map[string]float64) []TrendDay {
	last = last.UTC().Truncate(24 * time.Hour)
	out := make([]TrendDay, days)
	for i := range out {
		out[i].Day = last.AddDate(0, 0, i-days+1).Format(time.DateOnly)
	}
	sums := make([]float64, days)
	scored := make([]int, days)
	for id, snaps := range history {
		snaps = slices.Clone(snaps)
		// Days are YYYY-MM-DD: their text order is their date order.
		slices.SortFunc(snaps, func(a, b *healthv1.Snapshot) int { return cmp.Compare(a.GetDay(), b.GetDay()) })
		j := -1
		for i := range out {
			for j+1 < len(snaps) && cmp.Compare(snaps[j+1].GetDay(), out[i].Day) <= 0 {
				j++
			}
			if j < 0 {
				continue
			}
			s := snaps[j]
			switch s.GetBand() {
			case healthv1.Band_BAND_HEALTHY:
				out[i].Healthy++
			case healthv1.Band_BAND_NEUTRAL:
				out[i].Neutral++
			case healthv1.Band_BAND_AT_RISK:
				out[i].AtRisk++
				out[i].AtRiskARR += arr[id]
			default:
				continue
			}
			sums[i] += s.GetScore()
			scored[i]++
		}
	}
	for i := range out {
		if scored[i] > 0 {
			out[i].AvgScore = sums[i] / float64(scored[i])
		}
	}
	return out
}

// HealthTrend serves GET /v1/dashboard/health-trend?days=N (7 to 365,
// default 90): today's paying customers by band on each of the last N days.
func HealthTrend(c Clients, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), "GET /v1/dashboard/health-trend")
		days := defaultTrendDays
		if v := r.URL.Query().Get("days"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 7 || n > maxTrendDays {
				web.WriteStatus(w, r, codes.InvalidArgument, fmt.Sprintf("days: must be a whole number from 7 to %d", maxTrendDays))
				return
			}
			days = n
		}
		ctx := outgoing(r)
		asOf := now().UTC()
		health := healthv1.NewHealthServiceClient(c.Health)
		rows, err := pages(func(p *commonv1.PageRequest) ([]*healthv1.AccountRow, *commonv1.PageResponse, error) {
			resp, err := health.ListAccounts(ctx, &healthv1.ListAccountsRequest{Page: p})
			return resp.GetAccounts(), resp.GetPage(), err
		}, "list health accounts")
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		start := asOf.Truncate(24*time.Hour).AddDate(0, 0, -days+1).Add(-trendLookback)
		history, err := histories(ctx, health, rows, start, asOf)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		arr := make(map[string]float64, len(rows))
		for _, a := range rows {
			arr[a.GetAccountId()] = a.GetArr()
		}
		web.WriteJSON(w, http.StatusOK, TrendReport{AsOf: asOf, Accounts: len(rows), Days: BuildTrend(asOf, days, history, arr)})
	})
}

// histories reads the snapshots of each account from start to end.
func histories(ctx context.Context, health healthv1.HealthServiceClient, rows []*healthv1.AccountRow, start, end time.Time) (map[string][]*healthv1.Snapshot, error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		sem   = make(chan struct{}, historyCalls)
		out   = make(map[string][]*healthv1.Snapshot, len(rows))
	)
	window := &commonv1.TimeWindow{Start: timestamppb.New(start), End: timestamppb.New(end)}
	for _, a := range rows {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			snaps, err := pages(func(p *commonv1.PageRequest) ([]*healthv1.Snapshot, *commonv1.PageResponse, error) {
				resp, err := health.ListHealthHistory(ctx, &healthv1.ListHealthHistoryRequest{AccountId: a.GetAccountId(), Window: window, Page: p})
				return resp.GetSnapshots(), resp.GetPage(), err
			}, "list health history of "+strconv.Quote(a.GetAccountId()))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[a.GetAccountId()] = snaps
			case status.Code(err) == codes.NotFound:
			case first == nil:
				first = err
			}
		})
	}
	wg.Wait()
	return out, first
}
