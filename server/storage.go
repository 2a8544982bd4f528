package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// StorageConfig bounds what JetStream stores: every stream and bucket has
// a byte limit, and together they stay under the store they share. The
// zero value of each field means its default.
type StorageConfig struct {
	// MaxStore is the JetStream file store every stream and bucket
	// shares, and what each default limit below is a share of. The
	// embedded server is started with it as its max store. Default: with
	// the embedded server, half of what its directory may hold at start
	// (the disk's free space plus what JetStream already keeps there), the
	// other half left to the local indexes and the rest of the disk; with
	// an external NATS, 10 GiB (set it to what each of its servers gives
	// JetStream).
	MaxStore int64
	// EventsMaxBytes bounds the EVENTS stream (default half of MaxStore).
	EventsMaxBytes int64
	// AttemptLogMaxBytes bounds the attempt log, DELIVERYLOG (default a
	// fifth of MaxStore).
	AttemptLogMaxBytes int64
	// DeliveriesMaxBytes bounds the deliveries that wait (parked records
	// and scheduled retries; default a tenth of MaxStore).
	DeliveriesMaxBytes int64
	// HighWater is the share of EventsMaxBytes past which the events API
	// refuses new events (default 0.9), and of any stream's or bucket's
	// limit past which /readyz names it.
	HighWater float64
	// ReadEvery is how long a reading of the streams' bytes is used before
	// JetStream is asked again (default 1 s): ingest checks it on every
	// publish without a round trip of its own.
	ReadEvery time.Duration
}

// externalMaxStore is MaxStore's default with an external NATS.
const externalMaxStore = 10 << 30

// Shares of MaxStore, in percent, of each limit not set by a flag. They
// sum to 98: the rest is slack for what JetStream keeps besides messages.
const (
	eventsShare        = 50
	attemptLogShare    = 20
	deliveriesShare    = 10
	idempotencyShare   = 4 // answers to Idempotency-Key requests, 24 h
	subscriptionsShare = 2 // each of tenants, keys, subscriptions, health
	smallShare         = 1 // each of event types, jobs, portal links and sessions, rate-limit counters, operational_once
)

// budget is the byte limit of each stream and bucket.
type budget struct {
	store, events, attemptLog, deliveries int64
	idempotency                           int64
	subscriptions                         int64 // each of the subscription store's buckets
	small                                 int64 // each of the other buckets
	counters                              int64 // the rate-limit counter stream: small, at most maxCounterBytes
	highWater                             float64
}

// maxCounterBytes bounds the rate-limit counter stream whatever the store:
// it holds one counter per tenant and window for three windows (some
// 100,000 counters of about 150 bytes fit), and JetStream sizes a stream's
// blocks from its byte limit, 8 MiB past 32 MiB and 4 MiB below. Each
// request writes a counter, so the stream's last block is always being
// written and NATS keeps it whole in memory, the counters it replaced
// with it: a block of 4 MiB, not 8.
const maxCounterBytes = 16 << 20

// subscriptionBuckets and smallOnes count the limits budget.subscriptions
// and budget.small each stand for.
const (
	subscriptionBuckets = 4
	smallOnes           = 6
)

// sum is what the limits reserve of the store together.
func (b budget) sum() int64 {
	return b.events + b.attemptLog + b.deliveries + b.idempotency +
		subscriptionBuckets*b.subscriptions + (smallOnes-1)*b.small + b.counters
}

// validate reports limits that cannot be: negative, or a high-water mark
// past 1.
func (c StorageConfig) validate() error {
	if c.MaxStore < 0 || c.EventsMaxBytes < 0 || c.AttemptLogMaxBytes < 0 || c.DeliveriesMaxBytes < 0 {
		return errors.New("storage: a negative byte limit")
	}
	if c.HighWater < 0 || c.HighWater > 1 {
		return fmt.Errorf("storage: high-water mark %v not within 0..1", c.HighWater)
	}
	return nil
}

// budget splits c.MaxStore (which must be set) between the streams and
// buckets: each limit not given is its share of MaxStore. It reports
// limits that do not fit in MaxStore together, which JetStream would
// refuse as they are reserved.
func (c StorageConfig) budget() (budget, error) {
	if c.MaxStore <= 0 {
		return budget{}, errors.New("storage: no max store")
	}
	if err := c.validate(); err != nil {
		return budget{}, err
	}
	share := func(set int64, percent int64) int64 {
		if set > 0 {
			return set
		}
		return c.MaxStore / 100 * percent
	}
	b := budget{
		store:         c.MaxStore,
		events:        share(c.EventsMaxBytes, eventsShare),
		attemptLog:    share(c.AttemptLogMaxBytes, attemptLogShare),
		deliveries:    share(c.DeliveriesMaxBytes, deliveriesShare),
		idempotency:   share(0, idempotencyShare),
		subscriptions: share(0, subscriptionsShare),
		small:         share(0, smallShare),
		highWater:     c.HighWater,
	}
	b.counters = min(b.small, maxCounterBytes)
	if b.highWater == 0 {
		b.highWater = DefaultHighWater
	}
	if b.small < minBucketBytes {
		return budget{}, fmt.Errorf("storage: max store of %d bytes leaves a bucket %d bytes; give at least %d", c.MaxStore, b.small, minBucketBytes*100/smallShare)
	}
	if s := b.sum(); s > c.MaxStore {
		return budget{}, fmt.Errorf("storage: the streams' and buckets' limits sum to %d bytes, over the max store of %d", s, c.MaxStore)
	}
	return b, nil
}

// minBucketBytes is the least a bucket is given: a few records.
const minBucketBytes = 64 << 10

// pastHighWater is the high-water decision: a stream holding used bytes
// of its limit max is past the mark (a share of max) once it holds more.
// A stream without a limit never is.
func pastHighWater(used, max int64, mark float64) bool {
	if max <= 0 {
		return false
	}
	return float64(used) > mark*float64(max)
}

// defaultMaxStore is MaxStore's default for the embedded server storing
// under dir: half of the disk's free space plus what JetStream already
// keeps there, so a restart with a fuller store does not shrink it.
func defaultMaxStore(dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	free, err := diskFree(dir)
	if err != nil {
		return 0, err
	}
	var used int64
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file gone while walking; what is left counts
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			used += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return (free + used) / 2, nil
}

// maxStoreFile, under the data directory, keeps the store's default as
// it was worked out at the first start.
const maxStoreFile = "store-max-bytes"

// rememberedMaxStore is the default kept at path, else the one compute
// works out, kept there for the next starts: worked out again at each
// start, it would shrink as the disk fills with other things (this
// replica's indexes among them), and a stream whose byte limit shrinks
// drops its oldest messages, waiting deliveries included.
func rememberedMaxStore(path string, compute func() (int64, error)) (int64, error) {
	if b, err := os.ReadFile(path); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	n, err := compute()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, []byte(strconv.FormatInt(n, 10)+"\n"), 0o640); err != nil {
		return n, fmt.Errorf("keep the store's default in %s: %w", path, err)
	}
	return n, nil
}

// sizeStorage sets s.budget from the configuration, the store's default
// worked out as StorageConfig.MaxStore says, and logs it.
func (s *Server) sizeStorage() error {
	sc := s.cfg.Storage
	from := "--store-max-bytes"
	if sc.MaxStore <= 0 {
		sc.MaxStore, from = externalMaxStore, "default for an external NATS"
		if s.cfg.NATSURL == "" {
			dir := filepath.Join(s.cfg.DataDir, "jetstream")
			n, err := rememberedMaxStore(filepath.Join(s.cfg.DataDir, maxStoreFile), func() (int64, error) { return defaultMaxStore(dir) })
			switch {
			case n <= 0:
				s.logger.Warn("storage: free disk space unknown; the store's default is 10 GiB", "dir", dir, "err", err)
			case err != nil:
				s.logger.Warn("storage: the store's default is worked out again at the next start", "err", err)
				fallthrough
			default:
				sc.MaxStore, from = n, "half of the disk's room at the first start"
			}
		}
	}
	b, err := sc.budget()
	if err != nil {
		return err
	}
	s.budget = b
	s.logger.Info("storage bounded", "max_store", b.store, "from", from, "events", b.events, "attempt_log", b.attemptLog,
		"deliveries", b.deliveries, "idempotency", b.idempotency, "subscription_buckets", b.subscriptions, "other_buckets", b.small, "rate_limit_counters", b.counters,
		"high_water", b.highWater)
	return nil
}

// nearLimit lists, for /readyz, the streams and buckets past their
// high-water mark.
func (s *Server) nearLimit(ctx context.Context) []string { return s.usage.problems(ctx, s.needs) }

// defaultReadEvery is StorageConfig.ReadEvery's default.
const defaultReadEvery = time.Second

// streamBytes is a stream's bytes and its limit (0: none).
type streamBytes struct{ used, max int64 }

// usage reads the bytes of every stream (buckets included) in one listing,
// kept for every: for the ingest's high-water check, /readyz and metrics.
// It is safe for concurrent use.
type usage struct {
	list  func(context.Context) (map[string]streamBytes, error)
	every time.Duration
	mark  float64
	now   func() time.Time

	mu         sync.Mutex
	at         time.Time
	streams    map[string]streamBytes
	refreshing bool
}

// read returns the last reading, listing the streams again once it is
// u.every old. While one caller lists them, the others use the reading
// before; before the first, they get nil.
func (u *usage) read(ctx context.Context) map[string]streamBytes {
	u.mu.Lock()
	if u.refreshing || (u.streams != nil && u.now().Sub(u.at) < u.every) {
		defer u.mu.Unlock()
		return u.streams
	}
	u.refreshing = true
	u.mu.Unlock()
	streams, err := u.list(ctx)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refreshing = false
	u.at = u.now() // a failed listing too: asked again only after u.every
	if err == nil {
		u.streams = streams
	}
	return u.streams
}

// newUsage reads js's streams, each reading used for every (0: the
// default), checked against mark.
func newUsage(js jetstream.JetStream, every time.Duration, mark float64) *usage {
	if every <= 0 {
		every = defaultReadEvery
	}
	return &usage{list: func(ctx context.Context) (map[string]streamBytes, error) { return listStreams(ctx, js) },
		every: every, mark: mark, now: time.Now}
}

// listStreams reads every stream's bytes and limit in one listing.
func listStreams(ctx context.Context, js jetstream.JetStream) (map[string]streamBytes, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m := map[string]streamBytes{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		m[info.Config.Name] = streamBytes{used: int64(info.State.Bytes), max: max(info.Config.MaxBytes, 0)}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// NearLimit reports whether stream is past the high-water mark, by the
// last reading (false without one: the store then refuses at its limit).
func (u *usage) nearLimit(ctx context.Context, stream string) bool {
	b, ok := u.read(ctx)[stream]
	return ok && pastHighWater(b.used, b.max, u.mark)
}

// problems names, for /readyz, each stream or bucket past the
// high-water mark.
func (u *usage) problems(ctx context.Context, needs []need) []string {
	streams := u.read(ctx)
	var p []string
	for _, n := range needs {
		if b, ok := streams[n.stream()]; ok && pastHighWater(b.used, b.max, u.mark) {
			p = append(p, fmt.Sprintf("%s %s near its byte limit (%d of %d bytes)", n.kind, n.name, b.used, b.max))
		}
	}
	return p
}

// intake is the API's view of the events stream's headroom.
type intake struct {
	u      *usage
	stream string
}

func (i intake) NearLimit(ctx context.Context) bool { return i.u.nearLimit(ctx, i.stream) }

var (
	streamBytesDesc = prometheus.NewDesc("webhooks_stream_bytes",
		"Bytes a JetStream stream holds (a bucket's stream is KV_<bucket>), as last read (at most a second old).", []string{"stream"}, nil)
	streamMaxBytesDesc = prometheus.NewDesc("webhooks_stream_max_bytes",
		"A JetStream stream's byte limit (0: none). Past 0.9 of it (--storage-high-water) /readyz names it; for EVENTS the API refuses new events.", []string{"stream"}, nil)
)

// Describe and Collect make usage a prometheus.Collector of the two
// gauges, read at each scrape.
func (u *usage) Describe(ch chan<- *prometheus.Desc) {
	ch <- streamBytesDesc
	ch <- streamMaxBytesDesc
}

func (u *usage) Collect(ch chan<- prometheus.Metric) {
	for name, b := range u.read(context.Background()) {
		ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(b.used), name)
		ch <- prometheus.MustNewConstMetric(streamMaxBytesDesc, prometheus.GaugeValue, float64(b.max), name)
	}
}
