package limiter

import (
	"context"
	"sync"
)

// coalescer turns concurrent Adds to one counter into fewer calls of add:
// up to maxInFlight calls for a (tenant, window) go out as they come;
// past that, the Adds that arrive join one batch, sent as a single Add of
// their summed deltas as soon as one of the calls in flight has answered.
// Each Add still returns only after its delta is counted, with the value
// the counter had just after it, as if the batch's deltas had been added
// one by one in the order they joined: the count stays exact (whatever
// add is exact for), and one request's decision never waits on more than
// two calls in a row.
type coalescer struct {
	add         func(ctx context.Context, tenant string, window, delta int64) (int64, error)
	maxInFlight int

	mu       sync.Mutex
	counters map[counterKey]*coalesced
}

type counterKey struct {
	tenant string
	window int64
}

// coalesced is one counter's calls: how many are in flight, and the batch
// that goes next, which Adds join until it is sent.
type coalesced struct {
	inFlight int
	next     *addBatch
}

// An addBatch is the deltas of one call of add, and its answer.
type addBatch struct {
	// delta is the sum of the batch's deltas; it grows while the batch is
	// next and is fixed once it is sent.
	delta int64
	// send is closed when the batch, next, may go out.
	send chan struct{}
	// done is closed once total and err are set.
	done  chan struct{}
	total int64
	err   error
}

// newCoalescer returns a coalescer of add's calls, at most maxInFlight
// (at least 1) of them in flight for one counter.
func newCoalescer(add func(ctx context.Context, tenant string, window, delta int64) (int64, error), maxInFlight int) *coalescer {
	return &coalescer{add: add, maxInFlight: max(1, maxInFlight), counters: make(map[counterKey]*coalesced)}
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
	if cs.inFlight < c.maxInFlight {
		// Alone in its call: no batch to share an answer through.
		cs.inFlight++
		c.mu.Unlock()
		total, err := c.add(ctx, tenant, window, delta)
		c.mu.Lock()
		c.handOver(k, cs)
		c.mu.Unlock()
		return total, err
	}
	b, first := cs.next, false
	if b == nil {
		b, first = &addBatch{send: make(chan struct{}), done: make(chan struct{})}, true
		cs.next = b
	}
	b.delta += delta
	// after is what the batch held once this delta was in it.
	after := b.delta
	c.mu.Unlock()
	if first {
		// The first to join makes the call once a call in flight has
		// answered and handed its place over.
		<-b.send
		total, err := c.add(ctx, tenant, window, b.delta)
		c.mu.Lock()
		b.total, b.err = total, err
		c.handOver(k, cs)
		c.mu.Unlock()
		close(b.done)
	} else {
		<-b.done
	}
	if b.err != nil {
		return 0, b.err
	}
	// The deltas that joined after this one come after it in the count.
	return b.total - (b.delta - after), nil
}

// handOver gives up a call's place in flight once it has answered: to
// the next batch, which goes out now, or, none waiting, for good,
// forgetting the counter when it was the last. c.mu is held.
func (c *coalescer) handOver(k counterKey, cs *coalesced) {
	if next := cs.next; next != nil {
		cs.next = nil
		close(next.send)
	} else if cs.inFlight--; cs.inFlight == 0 {
		delete(c.counters, k)
	}
}
