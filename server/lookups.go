package server

import (
	"context"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/history"
	"github.com/onestack/webhooks/jobs"
)

// openLookups opens what issue 12 added to the stack: the event-type
// registry, the event index, and the runner of replay and recovery jobs,
// with their metrics. The dispatcher must exist.
func (s *Server) openLookups(ctx context.Context, reg prometheus.Registerer) error {
	var err error
	if s.types, err = events.OpenRegistry(ctx, s.js, events.RegistryConfig{Replicas: s.cfg.Replicas, MaxBytes: s.budget.small, Watch: s.watch}, s.logger); err != nil {
		return err
	}
	s.needs = append(s.needs, need{"bucket", s.types.Bucket()})
	s.events, err = eventindex.Open(ctx, s.js, eventindex.Config{
		Dir: filepath.Join(s.cfg.DataDir, "eventindex"), Retention: s.cfg.Events.Retention, Health: s.health,
	}, s.logger)
	if err != nil {
		return err
	}
	jc := s.cfg.Jobs
	jc.Replicas = s.cfg.Replicas
	jc.MaxBytes = s.budget.small
	jc.Watch = s.watch
	if s.jobs, err = jobs.Open(ctx, s.js, jc, s.disp.Jobs(), s.logger); err != nil {
		return err
	}
	s.needs = append(s.needs, need{"bucket", s.jobs.Bucket()})
	stats := s.store.FilterStats
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_filter_evaluations_total", Help: "Payload filters evaluated at fan-out (and by replays), one per subscription and event.",
		}, func() float64 { return float64(stats().Evaluated) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_filter_excluded_total", Help: "Events a subscription's payload filter left out (no delivery made), failed evaluations included.",
		}, func() float64 { return float64(stats().Excluded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_filter_errors_total", Help: "Payload filter evaluations that failed (a missing field compared, a wrong type, the cost limit): counted as no match.",
		}, func() float64 { return float64(stats().Failed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhooks_jobs_running", Help: "Replay and recovery jobs this replica is running.",
		}, func() float64 { return float64(s.jobs.Running()) }),
	)
	return nil
}

// closeLookups closes what openLookups opened but the event index (closed
// last, with the other index), within ctx: Shutdown stops the job runner
// earlier, before the dispatcher. It returns what it left closing.
func (s *Server) closeLookups(ctx context.Context) (left []string) {
	if s.jobs != nil {
		s.jobs.Stop(ctx) // at once when Shutdown stopped it already
	}
	if s.types != nil && !s.within(ctx, "event-type registry", s.types.Close) {
		left = append(left, "event-type registry")
	}
	return left
}

// Types is the event-type registry.
func (s *Server) Types() *events.Registry { return s.types }

// deliveries builds the API's deliveries.
func (s *Server) deliveries() history.Deliveries { return history.NewDeliveries(s.disp, s.logIndex) }

// eventLog builds the API's event lookups.
func (s *Server) eventLog() history.EventLog {
	return history.NewEventLog(s.events,
		func(ctx context.Context) (jetstream.Stream, error) { return s.js.Stream(ctx, events.StreamName) }, s.logIndex)
}

// recovery builds the API's replays and recoveries.
func (s *Server) recovery() history.Recovery {
	return history.NewRecovery(history.RecoveryConfig{Worker: s.disp.Jobs(), Runner: s.jobs, Limits: s.store,
		EventRetention: s.cfg.Events.Retention, DeliveryRetention: s.cfg.Dispatcher.AttemptRetention, Now: s.cfg.Dispatcher.Now})
}
