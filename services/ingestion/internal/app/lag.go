package app

import "github.com/prometheus/client_golang/prometheus"

// lagMetrics exports the lag budget, the subscriber lag it is compared
// with, and the writes it refused, for the CairnConsumersOverLagBudget
// alert (deploy/prometheus/alerts.yaml).
func lagMetrics(a *App, budget uint64) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_ingest_lag_budget",
			Help: "Records the furthest-behind subscriber may have left to receive before writes are refused (-lag-budget; 0: no bound).",
		}, func() float64 { return float64(budget) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cairn_ingest_subscriber_lag",
			Help: "Records the furthest-behind subscriber of the event log has not been sent yet.",
		}, func() float64 { return float64(a.SubscriberLag()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cairn_ingest_lag_shed_total",
			Help: "Ingest calls refused with ResourceExhausted because the subscribers were over the lag budget.",
		}, func() float64 { return float64(a.LagShed()) }),
	}
}
