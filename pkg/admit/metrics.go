package admit

import "github.com/prometheus/client_golang/prometheus"

// metrics are a controller's series; every one carries class=<name>.
type metrics struct {
	inflightReqs, inflightBytes, waiting, limit, fraction, hold *prometheus.Desc
	admitted, shed                                              *prometheus.Desc
	wait, retry                                                 prometheus.Histogram
}

func newMetrics(class string) *metrics {
	cl := prometheus.Labels{"class": class}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	return &metrics{
		inflightReqs:  desc("cairn_admit_inflight_requests", "Requests admitted and not yet done."),
		inflightBytes: desc("cairn_admit_inflight_bytes", "Bytes of the requests admitted and not yet done."),
		waiting:       desc("cairn_admit_waiting_requests", "Requests waiting for room before they are admitted or shed."),
		limit:         desc("cairn_admit_limit", "The configured bound (0: none), by bound: requests, bytes, key_requests, key_bytes.", "bound"),
		fraction:      desc("cairn_admit_limit_fraction", "Share of the overall bounds in use: below 1 while requests take longer than the target."),
		hold:          desc("cairn_admit_hold_seconds", "Running mean of how long admitted requests are held."),
		admitted:      desc("cairn_admit_admitted_total", "Requests admitted."),
		shed:          desc("cairn_admit_shed_total", "Requests shed (ResourceExhausted, HTTP 429), by the bound that was full.", "limit"),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_admit_wait_seconds", Help: "Time admitted requests waited for room.", ConstLabels: cl,
			Buckets: []float64{0, .001, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		retry: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_admit_retry_after_seconds", Help: "Retry delays given to shed requests.", ConstLabels: cl,
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60},
		}),
	}
}

func (m *metrics) collect(c *Controller, ch chan<- prometheus.Metric) {
	st := c.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(m.inflightReqs, float64(st.Requests))
	gauge(m.inflightBytes, float64(st.Bytes))
	gauge(m.waiting, float64(st.Waiting))
	gauge(m.fraction, st.Fraction)
	gauge(m.hold, st.Hold.Seconds())
	l := c.Limits()
	gauge(m.limit, float64(l.Requests), string(LimitRequests))
	gauge(m.limit, float64(l.Bytes), string(LimitBytes))
	gauge(m.limit, float64(l.KeyRequests), string(LimitKeyRequests))
	gauge(m.limit, float64(l.KeyBytes), string(LimitKeyBytes))
	ch <- prometheus.MustNewConstMetric(m.admitted, prometheus.CounterValue, float64(st.Admitted))
	for _, lim := range []Limit{LimitKeyRequests, LimitKeyBytes, LimitRequests, LimitBytes} {
		ch <- prometheus.MustNewConstMetric(m.shed, prometheus.CounterValue, float64(c.Shed(lim)), string(lim))
	}
	m.wait.Collect(ch)
	m.retry.Collect(ch)
}
