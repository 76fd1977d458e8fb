package deliver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	deliveries *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
	queue      *prometheus.GaugeVec
	dead       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_plays_deliveries_total",
			Help: `Delivery attempts and give-ups by destination and result: "delivered", "retrying" or "dead".`,
		}, []string{"destination", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_plays_delivery_seconds",
			Help:    "Duration of one delivery attempt, response included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms .. ~60 s
		}, []string{"destination"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_plays_queue",
			Help: "Messages held for a destination: waiting, in flight or awaiting record.",
		}, []string{"destination"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_plays_dead_total",
			Help: "Messages given up: refused by the receiver or past the horizon.",
		}, []string{"destination"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.seconds, m.queue, m.dead} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("delivery metrics are already registered with this registerer")
			}
			return nil, err
		}
	}
	return m, nil
}
