// Package kvwatch keeps memory up to date with a JetStream KV bucket: it
// watches every key, hands each entry to the caller in order, and tells
// when the values the bucket held at the start are in. A watch that ends
// (nats.go closes it when it cannot rebuild its consumer) is started
// again until Stop.
package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/internal/health"
)

// errEnded: the watch was stopped before the bucket's values were loaded.
var errEnded = errors.New("watch ended before the values were loaded")

// How long a watch that ended waits before each try to start again: the
// first wait, doubled after each failed try up to the last, each with
// jitter; and how long one try may take.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
	tryTimeout   = 5 * time.Second
)

// Config sets up a watch. The zero value reports nothing.
type Config struct {
	// Health, if set, holds a problem named "watch <bucket>" from the
	// moment the watch ends until it is started again and has the
	// bucket's values.
	Health *health.Health
	// Restarts, if set, counts the times the watch ended and was started
	// again, by bucket: make it with NewRestarts, and register it once.
	Restarts *prometheus.CounterVec
	// Closed, if set, tells that the connection under the watch is closed
	// for good (the process stops): a watch that ends then ends quietly,
	// and is not started again.
	Closed func() bool
}

// NewRestarts makes the counter of Config.Restarts, for every watch of the
// process to share.
func NewRestarts() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhooks_kv_watch_restarts_total",
		Help: "Times a KV bucket's watch ended (nats.go could not rebuild its consumer) and was restarted, counted as it ends; /readyz fails until it has the bucket's values again.",
	}, []string{"bucket"})
}

// Watch is a running watch of one bucket.
type Watch struct {
	kv       jetstream.KeyValue
	apply    func(jetstream.KeyValueEntry) error
	cfg      Config
	logger   *slog.Logger
	name     string // of its problem in the health
	restarts prometheus.Counter
	// live holds the keys the bucket had, as applied, with their
	// revisions: after a restart, those the bucket no longer has are
	// removed.
	live map[string]uint64

	cancel context.CancelFunc
	loaded chan struct{} // closed once the initial values are applied
	done   chan struct{} // closed when the goroutine returns
}

// Start watches every key of kv. A goroutine passes each entry to apply,
// in revision order: the bucket's current values first, then every change
// (puts, deletes and purges alike), until Stop. An entry apply returns an
// error for is logged, with its bucket and key, and skipped. ctx bounds
// the start only; Loaded waits for the current values.
//
// If the watch ends, it is started again, with backoff, until it can be.
// The new watch replays the bucket's current values, which apply must take
// as it takes any entry (an entry it already holds comes again), and after
// them the watch passes a delete (with no value) for every key it passed
// before that the bucket no longer holds, so that what apply keeps is the
// bucket's state even when a key's delete marker is gone (its TTL passed,
// or it was purged, while the watch was down). Such a delete's revision is
// the bucket's last revision when the new watch was asked for, or one past
// the key's last if that is higher: never older than the removal it stands
// for, unless the key was removed in the instant between the two asks.
func Start(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry) error, cfg Config, logger *slog.Logger) (*Watch, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &Watch{kv: kv, apply: apply, cfg: cfg, logger: logger, name: "watch " + kv.Bucket(), live: make(map[string]uint64),
		cancel: cancel, loaded: make(chan struct{}), done: make(chan struct{})}
	kw, end, err := w.open(ctx, wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch bucket %s: %w", kv.Bucket(), err)
	}
	if cfg.Restarts != nil {
		w.restarts = cfg.Restarts.WithLabelValues(kv.Bucket()) // a series from the start
	}
	go w.run(wctx, kw, end)
	return w, nil
}

// open asks for a watcher of every key, and returns it with the function
// that ends it. nats.go keeps a watcher until the context it was made with
// ends, so it is made with one that life (which Stop ends) bounds, and
// start, which bounds the asking only, ends that context only if it ends
// first.
func (w *Watch) open(start, life context.Context) (jetstream.KeyWatcher, func(), error) {
	wctx, cancel := context.WithCancel(life)
	stop := context.AfterFunc(start, cancel)
	kw, err := w.kv.WatchAll(wctx)
	if !stop() {
		if err == nil {
			kw.Stop()
		}
		cancel()
		return nil, nil, context.Cause(start)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return kw, func() { kw.Stop(); cancel() }, nil
}

func (w *Watch) run(ctx context.Context, kw jetstream.KeyWatcher, end func()) {
	defer close(w.done)
	defer w.cfg.Health.Clear(w.name) // a stopped watch is not down
	var (
		seen    map[string]bool // during a replay of the values: the keys it had
		lastRev uint64          // the bucket's last revision when the replay was asked for
	)
	for {
		ended := w.follow(ctx, kw, seen, lastRev)
		end()
		if !ended || (w.cfg.Closed != nil && w.cfg.Closed()) {
			return
		}
		if w.restarts != nil {
			w.restarts.Inc()
		}
		since := time.Now()
		w.logger.Warn("kv watch ended; restarting it", "bucket", w.kv.Bucket())
		w.cfg.Health.Set(w.name, "ended, restarting")
		var tries int
		kw, end, lastRev, tries = w.restart(ctx)
		if kw == nil {
			return // stopped
		}
		w.logger.Info("kv watch restarted", "bucket", w.kv.Bucket(), "after", time.Since(since).Round(time.Millisecond), "tries", tries)
		seen = make(map[string]bool)
	}
}

// follow applies kw's entries until it ends (true) or ctx does (false).
// With seen set, kw starts by replaying the bucket's values: seen collects
// their keys, and at the marker after them the keys the bucket no longer
// has are deleted.
func (w *Watch) follow(ctx context.Context, kw jetstream.KeyWatcher, seen map[string]bool, lastRev uint64) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case e, ok := <-kw.Updates():
			if !ok {
				return ctx.Err() == nil
			}
			if e == nil { // the marker after the initial values
				if seen != nil {
					w.removeUnseen(seen, lastRev)
					seen = nil
					w.cfg.Health.Clear(w.name)
				}
				select {
				case <-w.loaded:
				default:
					close(w.loaded)
				}
				continue
			}
			if seen != nil {
				seen[e.Key()] = true
			}
			w.pass(e)
		}
	}
}

// pass hands e to apply and keeps live.
func (w *Watch) pass(e jetstream.KeyValueEntry) {
	if e.Operation() == jetstream.KeyValuePut {
		w.live[e.Key()] = e.Revision()
	} else {
		delete(w.live, e.Key())
	}
	if err := w.apply(e); err != nil {
		w.logger.Error("skip an undecodable entry", "bucket", e.Bucket(), "key", e.Key(), "err", err)
	}
}

// removeUnseen deletes the keys a replay of the bucket's values did not
// have.
func (w *Watch) removeUnseen(seen map[string]bool, lastRev uint64) {
	for key, rev := range w.live {
		if !seen[key] {
			w.pass(removed{bucket: w.kv.Bucket(), key: key, rev: max(lastRev, rev+1)})
		}
	}
}

// restart makes a new watcher, trying until it can or ctx ends (nil). It
// returns it with the function that ends it, the bucket's last revision
// before it was made, and how many tries it took.
func (w *Watch) restart(ctx context.Context) (kw jetstream.KeyWatcher, end func(), lastRev uint64, tries int) {
	wait := firstBackoff
	for {
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, 0, tries
		case <-t.C:
		}
		tries++
		kw, end, lastRev, err := w.try(ctx)
		if err == nil {
			return kw, end, lastRev, tries
		}
		w.cfg.Health.Set(w.name, fmt.Sprintf("ended, restarting (try %d: %v)", tries, err))
		wait = min(2*wait, maxBackoff)
	}
}

// try asks for the bucket's last revision, then for a watcher.
func (w *Watch) try(ctx context.Context) (jetstream.KeyWatcher, func(), uint64, error) {
	tctx, cancel := context.WithTimeout(ctx, tryTimeout)
	defer cancel()
	st, err := w.kv.Status(tctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("bucket status: %w", err)
	}
	var lastRev uint64
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		lastRev = bs.StreamInfo().State.LastSeq
	}
	kw, end, err := w.open(tctx, ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	return kw, end, lastRev, nil
}

// removed is the delete passed for a key a restarted watch found gone.
type removed struct {
	bucket, key string
	rev         uint64
}

func (r removed) Bucket() string                  { return r.bucket }
func (r removed) Key() string                     { return r.key }
func (r removed) Value() []byte                   { return nil }
func (r removed) Revision() uint64                { return r.rev }
func (r removed) Created() time.Time              { return time.Time{} }
func (r removed) Delta() uint64                   { return 0 }
func (r removed) Operation() jetstream.KeyValueOp { return jetstream.KeyValueDelete }

// Loaded waits until the values the bucket held at Start are applied. It
// returns ctx's error if ctx ends first, or an error if the watch is
// stopped first.
func (w *Watch) Loaded(ctx context.Context) error {
	select {
	case <-w.loaded:
		return nil
	case <-w.done:
		select {
		case <-w.loaded:
			return nil
		default:
		}
		return fmt.Errorf("bucket %s: %w", w.kv.Bucket(), errEnded)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the watch and waits until apply is no longer running.
func (w *Watch) Stop() {
	w.cancel()
	<-w.done
}
