package limiter

import (
	"context"
	"sync"
)

// coalescer turns concurrent Adds to one counter into fewer calls of add:
// while one call for a (tenant, window) is in flight, the Adds that arrive
// join one batch, sent as a single Add of their summed deltas once the
// call in flight has answered. Each Add still returns only after its
// delta is counted, with the value the counter had just after it, as if
// the batch's deltas had been added one by one in the order they joined:
// the count stays exact (whatever add is exact for), and one request's
// decision never waits on more than two calls.
type coalescer struct {
	add func(ctx context.Context, tenant string, window, delta int64) (int64, error)

	mu       sync.Mutex
	counters map[counterKey]*coalesced
}

type counterKey struct {
	tenant string
	window int64
}

// coalesced is one counter's calls: the one in flight, and the batch that
// goes next, which Adds join until it is sent.
type coalesced struct {
	inFlight, next *addBatch
}

// An addBatch is the deltas of one call of add, and its answer.
type addBatch struct {
	// delta is the sum of the batch's deltas; it grows while the batch is
	// next and is fixed once it is in flight.
	delta int64
	// done is closed once total and err are set.
	done  chan struct{}
	total int64
	err   error
}

func newCoalescer(add func(ctx context.Context, tenant string, window, delta int64) (int64, error)) *coalescer {
	return &coalescer{add: add, counters: make(map[counterKey]*coalesced)}
}

// Add adds delta to (tenant, window) and returns the counter's value just
// after it. The call is made without ctx's cancellation (the deltas of
// other requests ride on it): add must bound its own time.
func (c *coalescer) Add(ctx context.Context, tenant string, window, delta int64) (int64, error) {
	ctx = context.WithoutCancel(ctx)
	k := counterKey{tenant, window}
	c.mu.Lock()
	cs := c.counters[k]
	if cs == nil {
		cs = &coalesced{}
		c.counters[k] = cs
	}
	if cs.inFlight == nil {
		b := &addBatch{delta: delta, done: make(chan struct{})}
		cs.inFlight = b
		c.mu.Unlock()
		c.send(ctx, k, cs, b)
		return b.total, b.err
	}
	b, first := cs.next, false
	if b == nil {
		b, first = &addBatch{done: make(chan struct{})}, true
		cs.next = b
	}
	prev := cs.inFlight
	b.delta += delta
	// after is what the batch held once this delta was in it.
	after := b.delta
	c.mu.Unlock()
	if first {
		// The first to join sends the batch once the call before it has
		// answered (which made it the call in flight).
		<-prev.done
		c.send(ctx, k, cs, b)
	} else {
		<-b.done
	}
	if b.err != nil {
		return 0, b.err
	}
	// The deltas that joined after this one come after it in the count.
	return b.total - (b.delta - after), nil
}

// send makes b's call, then hands the counter to its next batch (or
// forgets it) and answers b's Adds.
func (c *coalescer) send(ctx context.Context, k counterKey, cs *coalesced, b *addBatch) {
	total, err := c.add(ctx, k.tenant, k.window, b.delta)
	c.mu.Lock()
	b.total, b.err = total, err
	cs.inFlight, cs.next = cs.next, nil
	if cs.inFlight == nil {
		delete(c.counters, k)
	}
	c.mu.Unlock()
	close(b.done)
}
