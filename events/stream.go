package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
)

// StreamName is the JetStream stream that keeps events.
const StreamName = "EVENTS"

// DefaultRetention is how long events are kept for replay by default.
const DefaultRetention = 14 * 24 * time.Hour

// DefaultDedupeWindow is how long event ids are remembered by default.
const DefaultDedupeWindow = 24 * time.Hour

// The duplicate window is kept in two parts: NATS remembers the ids of the
// stream's most recent events (its Duplicates, NATSWindow), in memory; the
// event index remembers the rest, on disk (eventindex.Duplicates). They
// meet with no gap as long as, when the API checks an id, the index holds
// every event stored before NATS's window began, reaching back by a
// margin (DedupeMargin) for what neither clock nor publish can promise:
//
//   - a publish's longest time in flight (PublisherConfig.Timeout): an
//     event checked, then published, may be stored as late as that after
//     its check, by then out of a window measured from the check;
//   - the skew between the clock NATS stamps an event's stored time with
//     and the replica's that reads it (ClockSkew).
//
// So the index must hold every event stored before now − (NATSWindow −
// margin). NATS's window must exceed the margin, and what it has beyond it
// (IndexSlack by default) is how far behind the stream the index may be and
// still answer at once; past it (idle, or behind) a check first catches up
// with the stream (a stream info request, then at most 5 s of waiting). A
// window at or below the margin is safe but makes every check do so.

// ClockSkew is how far the clocks of NATS and of a webhookd replica may
// differ, as the duplicate window's margin counts it.
const ClockSkew = 10 * time.Second

// IndexSlack is how far behind the stream's newest events the event index
// may be, with the default windows, and still answer a check without
// asking the stream first. At a steady rate the index trails the stream
// by milliseconds; after an idle spell longer than this, the first check
// asks the stream once.
const IndexSlack = 10 * time.Second

// DedupeMargin is how much further back than NATS's own window the event
// index must hold every stored event when it answers a check: a publish's
// longest time in flight (publishTimeout, DefaultPublishTimeout if not
// positive) and ClockSkew.
func DedupeMargin(publishTimeout time.Duration) time.Duration {
	if publishTimeout <= 0 {
		publishTimeout = DefaultPublishTimeout
	}
	return publishTimeout + ClockSkew
}

// DefaultNATSWindow is how long the stream itself remembers event ids by
// default: the margin (the default publish timeout and ClockSkew, 20 s)
// and IndexSlack, 30 s in all. NATS keeps each id of its window in memory
// (about 200 bytes of heap, twice that in RSS with the GC's headroom: some
// 36 MB at 3,000 events/s), so it is no longer than the margin needs; the
// event index remembers ids for the rest of the duplicate window, on disk.
const DefaultNATSWindow = DefaultPublishTimeout + ClockSkew + IndexSlack

// StreamConfig sets how events are kept. The zero value means the defaults.
type StreamConfig struct {
	// Retention is how long events are kept for replay (default 14 days).
	Retention time.Duration
	// DedupeWindow is how long an event id is remembered per tenant, so
	// the same id published again by that tenant is stored once (default
	// 24 hours, as long as an Idempotency-Key). The stream itself
	// remembers ids for NATSWindow only; the events API checks the rest of
	// the window in the event index (eventindex.Duplicates).
	DedupeWindow time.Duration
	// NATSWindow is how long the stream itself remembers event ids (its
	// Duplicates; default 30 s, at most DedupeWindow; see DedupeMargin for
	// why it must exceed 20 s, the margin). NATS keeps
	// every id of it in memory, so a publisher that reaches the stream
	// without the API's check (events.Publisher) is deduplicated within
	// this window only.
	NATSWindow time.Duration
	// Replicas is the stream's replication factor (default 1; 3 on a cluster).
	Replicas int
	// MaxBytes bounds the stream's bytes (0: no bound). At the bound
	// JetStream refuses a new event (DiscardNew) rather than drop an old
	// one: events still to be delivered, or waiting for a retry, are read
	// from the stream, so dropping them would lose deliveries silently.
	// The API refuses before the bound (see Headroom).
	MaxBytes int64
}

// WithDefaults returns c with each unset field at its default.
func (c StreamConfig) WithDefaults() StreamConfig { return c.withDefaults() }

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.NATSWindow <= 0 {
		c.NATSWindow = DefaultNATSWindow
	}
	c.NATSWindow = min(c.NATSWindow, c.DedupeWindow)
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	return c
}

// maxBytes is JetStream's MaxBytes for a bound n: -1 (none) for 0.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// EnsureStream creates the events stream, or updates it to cfg if it
// exists. It is safe to call from every replica at start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	sc := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Change events published by platform services",
		Subjects:    []string{SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.Retention,
		Duplicates:  cfg.NATSWindow,
		Replicas:    cfg.Replicas,
		MaxBytes:    maxBytes(cfg.MaxBytes),
		Discard:     jetstream.DiscardNew,
		// Deliveries that waited read their event's body by sequence.
		AllowDirect: true,
	}
	s, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, sc)
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", sc.Name, err)
	}
	return s, nil
}
