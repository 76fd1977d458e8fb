package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics time this package's write transactions and report bbolt's own
// cumulative transaction statistics at scrape time. They are created with
// the DB, so that writes before the service's registry exists still count.
type metrics struct {
	commit *prometheus.HistogramVec
	// commitGroup and commitUpdate are commit's two series, resolved once
	// rather than per commit.
	commitGroup, commitUpdate prometheus.Observer
	group                     prometheus.Histogram
	writeErrors               *prometheus.CounterVec

	writeTime, spillTime, rebalanceTime, pageWrites, freePages *prometheus.Desc
	stats                                                      func() statsSnapshot
}

// statsSnapshot is the part of bbolt.Stats the collector reports.
type statsSnapshot struct {
	writeTime, spillTime, rebalanceTime time.Duration
	writes                              int64
	freePages                           int
}

func newMetrics(stats func() statsSnapshot) *metrics {
	m := &metrics{
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_bbolt_commit_seconds",
			Help: "Latency of write transactions made through pkg/store, from start to durable (fsync included), " +
				`by path: "group" for group commits, "update" for single-writer updates.`,
			Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 11), // 0.2 ms .. ~2 s
		}, []string{"path"}),
		group: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_bbolt_commit_group_size",
			Help:    "Callers sharing one group-commit transaction (and one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_bbolt_write_errors_total",
			Help: `Write transactions that could not be written, by kind: "disk_full" or "io". Callers got Unavailable with a retry delay.`,
		}, []string{"kind"}),
		writeTime: prometheus.NewDesc("cairn_bbolt_write_seconds_total",
			"Time bbolt spent writing dirty pages and meta pages to disk, fsync included.", nil, nil),
		spillTime: prometheus.NewDesc("cairn_bbolt_spill_seconds_total",
			"Time bbolt spent splitting and serialising nodes before writing.", nil, nil),
		rebalanceTime: prometheus.NewDesc("cairn_bbolt_rebalance_seconds_total",
			"Time bbolt spent rebalancing nodes after deletes.", nil, nil),
		pageWrites: prometheus.NewDesc("cairn_bbolt_page_writes_total",
			"Page writes bbolt performed.", nil, nil),
		freePages: prometheus.NewDesc("cairn_bbolt_free_pages",
			"Free pages in the bbolt file: space that writes reuse before the file grows.", nil, nil),
		stats: stats,
	}
	m.commitGroup, m.commitUpdate = m.commit.WithLabelValues("group"), m.commit.WithLabelValues("update")
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.commit.Describe(ch)
	m.group.Describe(ch)
	m.writeErrors.Describe(ch)
	for _, d := range []*prometheus.Desc{m.writeTime, m.spillTime, m.rebalanceTime, m.pageWrites, m.freePages} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.commit.Collect(ch)
	m.group.Collect(ch)
	m.writeErrors.Collect(ch)
	s := m.stats()
	ch <- prometheus.MustNewConstMetric(m.writeTime, prometheus.CounterValue, s.writeTime.Seconds())
	ch <- prometheus.MustNewConstMetric(m.spillTime, prometheus.CounterValue, s.spillTime.Seconds())
	ch <- prometheus.MustNewConstMetric(m.rebalanceTime, prometheus.CounterValue, s.rebalanceTime.Seconds())
	ch <- prometheus.MustNewConstMetric(m.pageWrites, prometheus.CounterValue, float64(s.writes))
	ch <- prometheus.MustNewConstMetric(m.freePages, prometheus.GaugeValue, float64(s.freePages))
}

// Collector exposes the file's transaction metrics (commit latency, group
// sizes, bbolt's write, spill and rebalance time, page writes, free pages)
// labelled with the service, for the service's /metrics registry.
func (db *DB) Collector(service string) prometheus.Collector {
	return prometheus.WrapCollectorWith(prometheus.Labels{"service": service}, db.metrics)
}

func (db *DB) snapshot() statsSnapshot {
	st := db.bolt.Stats()
	return statsSnapshot{
		writeTime:     st.TxStats.GetWriteTime(),
		spillTime:     st.TxStats.GetSpillTime(),
		rebalanceTime: st.TxStats.GetRebalanceTime(),
		writes:        st.TxStats.GetWrite(),
		freePages:     st.FreePageN,
	}
}
