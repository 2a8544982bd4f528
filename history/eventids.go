package history

import (
	"context"
	"time"

	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
)

// clockSkew is how far the clocks of NATS and of a webhookd replica may
// differ, as the duplicate window's margin counts it.
const clockSkew = 10 * time.Second

// EventIDs is the events API's view of the event index: the duplicate
// window beyond the stream's own, and each tenant's stored bytes.
type EventIDs struct {
	ix  *eventindex.Index
	dup eventindex.Duplicates
}

// NewEventIDs checks ids against the index for the duplicate window of
// sc, reaching back past the stream's own window by a publish's longest
// time in flight (publishTimeout) and the clocks' skew.
func NewEventIDs(ix *eventindex.Index, sc events.StreamConfig, publishTimeout time.Duration) EventIDs {
	sc = sc.WithDefaults()
	if publishTimeout <= 0 {
		publishTimeout = events.DefaultPublishTimeout
	}
	return EventIDs{ix: ix, dup: eventindex.Duplicates{Index: ix, Window: sc.DedupeWindow, StreamWindow: sc.NATSWindow,
		Margin: publishTimeout + clockSkew}}
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
