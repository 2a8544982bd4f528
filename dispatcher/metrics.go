package dispatcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus series.
type metrics struct {
	events        prometheus.Counter
	parked        prometheus.Counter
	attempts      *prometheus.CounterVec
	duration      prometheus.Histogram
	disabled      prometheus.Counter
	inflight      prometheus.Gauge
	endToEnd      prometheus.Histogram
	ackErrors     *prometheus.CounterVec
	consumeErrors prometheus.Counter
	demoted       prometheus.Counter
	shed          prometheus.Counter
	alreadyMade   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_fanout_events_total", Help: "Events fanned out to subscriptions.",
		}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_deliveries_parked_total", Help: "Deliveries stored to wait (no room in memory, a paced or FIFO subscription, a test, a replay, a manual retry): one durable write each.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhooks_attempts_total",
			Help: "Delivery attempts by outcome: succeeded, retrying (failed, another attempt scheduled), failed (given up), skipped (subscription disabled), dropped (subscription deleted).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhooks_attempt_duration_seconds", Help: "Duration of one HTTP attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_subscriptions_disabled_total", Help: "Subscriptions disabled by the dispatcher (410 Gone or endpoint health).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "webhooks_attempts_in_flight", Help: "HTTP attempts in flight.",
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhooks_delivery_latency_seconds", Help: "From an event's storage to the end of its delivery's successful first attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
		ackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhooks_jetstream_ack_errors_total", Help: "Acknowledgements (ack, nak, term, in_progress) JetStream did not take; the message is redelivered after its ack wait.",
		}, []string{"op"}),
		consumeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_consume_errors_total", Help: "Errors reported by JetStream consumers (missed heartbeats, deleted consumers, reconnections).",
		}),
		demoted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_attempts_demoted_total", Help: "Attempts that ran past the time a worker is lent for: each handed its worker back to the pool and went on outside it, within its tenant's bound.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_attempts_shed_total", Help: "Deliveries not sent because their destination's breaker was open: each is recorded as a failed attempt and retried on the schedule.",
		}),
		alreadyMade: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhooks_redeliveries_already_made_total", Help: "Deliveries not made again when their event was read again (delivered again by JetStream, or read anew after a consumer lost its state or after a restart): the attempt log shows them finished.",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.parked, m.attempts, m.duration, m.disabled, m.inflight, m.endToEnd, m.ackErrors, m.consumeErrors, m.demoted, m.shed, m.alreadyMade} {
		reg.MustRegister(c)
	}
	// Every series exists from the start, at zero: a rate over it works
	// before the first failure, and the page always shows what is counted.
	for _, o := range []string{outcomeSucceeded, outcomeRetrying, outcomeFailed, outcomeSkipped, outcomeDropped} {
		m.attempts.WithLabelValues(o)
	}
	for _, op := range []string{opAck, opNak, opTerm, opInProgress} {
		m.ackErrors.WithLabelValues(op)
	}
	return m
}
