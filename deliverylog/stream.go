package deliverylog

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
)

// StreamName is the JetStream stream of the attempt log.
const StreamName = "DELIVERYLOG"

// subjectPrefix starts every subject of the stream; a tenant's records go
// to subjectPrefix + tenant id, so the stream has one subject per tenant
// (JetStream keeps state in memory per subject), never one per delivery.
const subjectPrefix = "dlog."

// DefaultRetention is how long the log keeps a record, and the index a
// delivery, unless configured otherwise.
const DefaultRetention = 30 * 24 * time.Hour

// duplicateWindow is how long the stream remembers message ids: a batch
// the writer sends again within it is stored once.
const duplicateWindow = 2 * time.Minute

// StreamConfig sizes the stream; the zero value means the defaults.
type StreamConfig struct {
	// Retention is how long a record is kept (default 30 days). The
	// index's IndexConfig.Retention must be the same.
	Retention time.Duration
	// Replicas is the stream's replica count (default 1).
	Replicas int
	// MaxBytes bounds the stream's bytes (0: no bound). At the bound the
	// oldest records are dropped (DiscardOld), so the dispatcher can always
	// log an attempt. That is safe for the index: it never reads a record
	// back from the stream, so a running index keeps what it applied until
	// its own age retention; only an index rebuilt from the stream (a new
	// replica, a corrupt store) lacks the records dropped, as it lacks those
	// past Retention.
	MaxBytes int64
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// Validate reports a negative retention, one shorter than the duplicate
// window, or a replica count JetStream refuses.
func (c StreamConfig) Validate() error {
	c = c.withDefaults()
	if c.Retention < duplicateWindow {
		return fmt.Errorf("stream retention %v below the %v duplicate window: %w", c.Retention, duplicateWindow, ErrInvalid)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("stream replicas %d not in 1..5: %w", c.Replicas, ErrInvalid)
	}
	return nil
}

// maxBytes is JetStream's MaxBytes for a bound n: -1 (none) for 0.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// EnsureStream creates the DELIVERYLOG stream, or updates it to cfg: subjects
// "dlog.>", file storage, limits retention with MaxAge = Retention
// and MaxBytes discarding the oldest, a 2-minute duplicate window and direct gets.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName,
			Description: "delivery attempt log: batches of records, one subject per tenant",
			Subjects:    []string{subjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.Retention,
			Discard:     jetstream.DiscardOld,
			MaxBytes:    maxBytes(cfg.MaxBytes),
			Duplicates:  duplicateWindow,
			AllowDirect: true,
			Replicas:    cfg.Replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}
