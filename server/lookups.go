package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
)

// The retention defaults of the events stream and the attempt log, which
// bound how far replays and recoveries reach.
const (
	defaultEventRetention = 14 * 24 * time.Hour
	// syncWait bounds how long a lookup waits for an index to catch up
	// with what was stored before it (read-your-writes); past it the
	// lookup answers with what the index has.
	syncWait = 2 * time.Second
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
		Dir: filepath.Join(s.cfg.DataDir, "eventindex"), Retention: s.eventRetention(), Health: s.health,
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

func (s *Server) eventRetention() time.Duration {
	if s.cfg.Events.Retention > 0 {
		return s.cfg.Events.Retention
	}
	return defaultEventRetention
}

func (s *Server) deliveryRetention() time.Duration {
	if s.cfg.Dispatcher.AttemptRetention > 0 {
		return s.cfg.Dispatcher.AttemptRetention
	}
	return deliverylog.DefaultRetention
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

// eventLog serves the API's event lookups from the event index (which
// events), the events stream (their data) and the attempt log's index
// (their deliveries).
type eventLog struct {
	index  *eventindex.Index
	stream func(context.Context) (jetstream.Stream, error)
	log    *deliverylog.Index
}

var _ api.EventLog = eventLog{}

func (s *Server) eventLog() eventLog {
	return eventLog{index: s.events, log: s.logIndex,
		stream: func(ctx context.Context) (jetstream.Stream, error) { return s.js.Stream(ctx, events.StreamName) }}
}

func (l eventLog) Events(ctx context.Context, tenant string, q api.EventQuery) ([]api.EventSummary, string, error) {
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	_ = l.index.Sync(sctx) // best effort: answer with what is indexed
	cancel()
	list, next, err := l.index.List(ctx, tenant, eventindex.Query{Type: q.Type, Since: q.Since, Until: q.Until, Cursor: q.Cursor, Limit: q.Limit})
	if err != nil {
		return nil, "", lookupErr(err)
	}
	out := make([]api.EventSummary, len(list))
	for i, e := range list {
		out[i] = api.EventSummary{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt}
	}
	return out, next, nil
}

func (l eventLog) Event(ctx context.Context, tenant, id string) (api.EventDetail, error) {
	e, err := l.index.Lookup(ctx, tenant, id)
	if errors.Is(err, eventindex.ErrNotFound) {
		// Perhaps stored a moment ago: catch up once, then look again.
		sctx, cancel := context.WithTimeout(ctx, syncWait)
		_ = l.index.Sync(sctx)
		cancel()
		e, err = l.index.Lookup(ctx, tenant, id)
	}
	if err != nil {
		return api.EventDetail{}, lookupErr(err)
	}
	st, err := l.stream(ctx)
	if err != nil {
		return api.EventDetail{}, apiErr(err)
	}
	m, err := st.GetMsg(ctx, e.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return api.EventDetail{}, fmt.Errorf("event %s is no longer retained: %w", id, api.ErrEventNotFound)
	}
	if err != nil {
		return api.EventDetail{}, apiErr(err)
	}
	if t, _, perr := events.ParseSubject(m.Subject); perr != nil || t != tenant {
		return api.EventDetail{}, fmt.Errorf("event %s: %w", id, api.ErrEventNotFound)
	}
	body, err := events.Parse(m.Data)
	if err != nil {
		return api.EventDetail{}, fmt.Errorf("event %s: %w", id, err)
	}
	out := api.EventDetail{EventSummary: api.EventSummary{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt}, Data: body.Data, Deliveries: []api.Delivery{}}
	if len(out.Data) == 0 {
		out.Data = []byte("{}")
	}
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	_ = l.log.Sync(sctx)
	cancel()
	dls, err := l.log.EventDeliveries(ctx, tenant, id)
	if err != nil {
		return api.EventDetail{}, apiErr(err)
	}
	for _, d := range dls {
		// An id used again after the duplicate window is another event.
		if d.EventSeq == e.Seq {
			out.Deliveries = append(out.Deliveries, apiDelivery(d))
		}
	}
	return out, nil
}

// lookupErr maps the event index's errors.
func lookupErr(err error) error {
	switch {
	case errors.Is(err, eventindex.ErrNotFound):
		return fmt.Errorf("%w: %w", api.ErrEventNotFound, err)
	case errors.Is(err, eventindex.ErrInvalid):
		return fmt.Errorf("%w: %w", api.ErrInvalidCursor, err)
	case errors.Is(err, eventindex.ErrUnavailable):
		return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	return apiErr(err)
}
