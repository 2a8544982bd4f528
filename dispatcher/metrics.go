package dispatcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus series.
type metrics struct {
	events   prometheus.Counter
	tasks    prometheus.Counter
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	disabled prometheus.Counter
	deferred prometheus.Counter
	inflight prometheus.Gauge
	endToEnd prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_fanout_events_total", Help: "Events fanned out to subscriptions.",
		}),
		tasks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_fanout_tasks_total", Help: "Delivery tasks stored by the fan-out.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhooks_attempts_total",
			Help: "Delivery attempts by outcome: succeeded, retrying (failed, another attempt scheduled), failed (given up), skipped (subscription disabled), dropped (subscription deleted).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhooks_attempt_duration_seconds", Help: "Duration of one HTTP attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_subscriptions_disabled_total", Help: "Subscriptions disabled by the dispatcher (410 Gone or endpoint health).",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_tasks_deferred_total", Help: "Tasks put back for a second because their subscription's endpoint was too slow for more to wait in memory.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "webhooks_attempts_in_flight", Help: "HTTP attempts in flight.",
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhooks_delivery_latency_seconds", Help: "From delivery creation to the end of a successful first attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.tasks, m.attempts, m.latency, m.disabled, m.deferred, m.inflight, m.endToEnd} {
		reg.MustRegister(c)
	}
	return m
}
