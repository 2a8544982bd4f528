// Package kvwatch keeps memory up to date with a JetStream KV bucket: it
// watches every key, hands each entry to the caller in order, and tells
// when the values the bucket held at the start are in.
package kvwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// errEnded: the watch ended before the bucket's values were in.
var errEnded = errors.New("watch ended before the values were loaded")

// Watch is a running watch of one bucket.
type Watch struct {
	bucket string
	cancel context.CancelFunc
	loaded chan struct{} // closed once the initial values are applied
	done   chan struct{} // closed when the goroutine returns
}

// Start watches every key of kv. A goroutine passes each entry to apply,
// in revision order: the bucket's current values first, then every change
// (puts, deletes and purges alike), until Stop. An entry apply returns an
// error for is logged, with its bucket and key, and skipped. ctx bounds
// the start only; Loaded waits for the current values.
func Start(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry) error, logger *slog.Logger) (*Watch, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kw, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch bucket %s: %w", kv.Bucket(), err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &Watch{bucket: kv.Bucket(), cancel: cancel, loaded: make(chan struct{}), done: make(chan struct{})}
	go w.run(wctx, kw, apply, logger)
	return w, nil
}

func (w *Watch) run(ctx context.Context, kw jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry) error, logger *slog.Logger) {
	defer close(w.done)
	defer kw.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-kw.Updates():
			if !ok {
				return
			}
			if e == nil { // the marker after the initial values
				if initial {
					initial = false
					close(w.loaded)
				}
				continue
			}
			if err := apply(e); err != nil {
				logger.Error("skip an undecodable entry", "bucket", e.Bucket(), "key", e.Key(), "err", err)
			}
		}
	}
}

// Loaded waits until the values the bucket held at Start are applied. It
// returns ctx's error if ctx ends first, or an error if the watch ends
// first.
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
		return fmt.Errorf("bucket %s: %w", w.bucket, errEnded)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the watch and waits until apply is no longer running.
func (w *Watch) Stop() {
	w.cancel()
	<-w.done
}
