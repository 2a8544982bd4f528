package history

import (
	"context"
	"time"

	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
)

// EventIDs is the events API's view of the event index: the duplicate
// window beyond the stream's own, and each tenant's stored bytes.
type EventIDs struct {
	ix  *eventindex.Index
	dup eventindex.Duplicates
}

// NewEventIDs checks ids against the index for the duplicate window of
// sc, reaching back past the stream's own window by events.DedupeMargin of
// publishTimeout (a publish's longest time in flight, and the clocks'
// skew).
func NewEventIDs(ix *eventindex.Index, sc events.StreamConfig, publishTimeout time.Duration) EventIDs {
	return EventIDs{ix: ix, dup: duplicates(ix, sc, publishTimeout)}
}

// duplicates is the event index's duplicate check for sc's windows.
func duplicates(ix *eventindex.Index, sc events.StreamConfig, publishTimeout time.Duration) eventindex.Duplicates {
	sc = sc.WithDefaults()
	return eventindex.Duplicates{Index: ix, Window: sc.DedupeWindow, StreamWindow: sc.NATSWindow,
		Margin: events.DedupeMargin(publishTimeout)}
}

// Seen reports, for each id, whether the tenant stored it within the
// duplicate window.
func (e EventIDs) Seen(ctx context.Context, tenant string, ids []string) ([]bool, error) {
	seen, err := e.dup.Seen(ctx, tenant, ids)
	if err != nil {
		return nil, storeErr(err)
	}
	return seen, nil
}

// StoredBytes is what the tenant's events hold in the store now.
func (e EventIDs) StoredBytes(ctx context.Context, tenant string) (int64, error) {
	n, err := e.ix.StoredBytes(ctx, tenant)
	if err != nil {
		return 0, storeErr(err)
	}
	return n, nil
}
