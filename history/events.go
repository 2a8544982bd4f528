package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
)

// syncWait bounds how long a lookup waits for an index to catch up with
// what was stored before it (read-your-writes); past it the lookup answers
// with what the index has.
const syncWait = 2 * time.Second

// EventLog serves the API's event lookups from the event index (which
// events), the events stream (their data) and the attempt log's index
// (their deliveries).
type EventLog struct {
	index  *eventindex.Index
	stream func(context.Context) (jetstream.Stream, error)
	log    *deliverylog.Index
}

var _ api.EventLog = EventLog{}

// NewEventLog returns the event lookups of index (which events), stream
// (their data: the events stream, opened at each lookup) and log (their
// deliveries).
func NewEventLog(index *eventindex.Index, stream func(context.Context) (jetstream.Stream, error), log *deliverylog.Index) EventLog {
	return EventLog{index: index, stream: stream, log: log}
}

// Events lists tenant's events as api.EventLog says.
func (l EventLog) Events(ctx context.Context, tenant string, q api.EventQuery) ([]api.EventSummary, string, error) {
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	_ = l.index.Sync(sctx) // best effort: answer with what is indexed
	cancel()
	list, next, err := l.index.List(ctx, tenant, eventindex.Query{Type: q.Type, Since: q.Since, Until: q.Until, Cursor: q.Cursor, Limit: q.Limit})
	if err != nil {
		return nil, "", storeErr(err)
	}
	out := make([]api.EventSummary, len(list))
	for i, e := range list {
		out[i] = api.EventSummary{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt}
	}
	return out, next, nil
}

// Event is one of tenant's events, its data and its deliveries.
func (l EventLog) Event(ctx context.Context, tenant, id string) (api.EventDetail, error) {
	e, err := l.index.Lookup(ctx, tenant, id)
	if errors.Is(err, eventindex.ErrNotFound) {
		// Perhaps stored a moment ago: catch up once, then look again.
		sctx, cancel := context.WithTimeout(ctx, syncWait)
		_ = l.index.Sync(sctx)
		cancel()
		e, err = l.index.Lookup(ctx, tenant, id)
	}
	if err != nil {
		return api.EventDetail{}, storeErr(err)
	}
	st, err := l.stream(ctx)
	if err != nil {
		return api.EventDetail{}, storeErr(err)
	}
	m, err := st.GetMsg(ctx, e.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return api.EventDetail{}, fmt.Errorf("event %s is no longer retained: %w", id, api.ErrEventNotFound)
	}
	if err != nil {
		return api.EventDetail{}, storeErr(err)
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
		return api.EventDetail{}, storeErr(err)
	}
	for _, d := range dls {
		// An id used again after the duplicate window is another event.
		if d.EventSeq == e.Seq {
			out.Deliveries = append(out.Deliveries, apiDelivery(d))
		}
	}
	return out, nil
}
