package dispatcher

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// fairQueue hands deliveries to workers one subscription at a time, round
// robin, with at most perSub of one subscription's attempts in flight. A
// subscription whose endpoint is slow therefore holds at most perSub
// workers, and the others keep flowing.
//
// How many deliveries one subscription may keep waiting in memory follows
// its endpoint's speed: no more than would wait about maxWait, judged by a
// moving average of its attempts' durations, and never more than maxLen. A
// fast endpoint can absorb a burst; a slow one keeps only a few, and the
// rest are parked, so it cannot hold events that every tenant's deliveries
// share.
type fairQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	perSub  int
	maxLen  int
	maxWait time.Duration
	subs    map[string]*subQueue
	ready   []*subQueue // subscriptions with waiting deliveries and room in flight
	closed  bool
	// busy counts deliveries waiting or in flight; empty is signalled
	// when it drops to zero.
	busy  int
	empty chan struct{}
	// paces outlive the queues, which are dropped when idle: a pace must
	// remember its last token across idle moments.
	paces map[string]*rate.Limiter
}

type subQueue struct {
	key      string
	waiting  []*delivery
	inflight int
	inReady  bool
	// pace, when set, spaces the subscription's attempts; paced says a
	// token is already reserved for the next one, and pacing that a timer
	// will make it ready again.
	pace   *rate.Limiter
	paced  bool
	pacing bool
	// avg is the moving average of attempt durations, zero until the
	// first attempt ends.
	avg time.Duration
}

func newFairQueue(perSub, maxLen int, maxWait time.Duration) *fairQueue {
	q := &fairQueue{perSub: perSub, maxLen: maxLen, maxWait: maxWait, subs: make(map[string]*subQueue),
		paces: make(map[string]*rate.Limiter), empty: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// room is how many deliveries sq may keep waiting: about maxWait's worth at
// the endpoint's speed and at its pace. Callers hold mu.
func (q *fairQueue) room(sq *subQueue) int {
	n := q.maxLen
	if sq.avg > 0 {
		n = min(n, max(int(int64(q.maxWait)*int64(q.perSub)/int64(sq.avg)), q.perSub))
	}
	if sq.pace != nil {
		n = min(n, max(int(q.maxWait.Seconds()*float64(sq.pace.Limit())), 1))
	}
	return n
}

// push queues d for a subscription paced at pace deliveries per second
// (zero: unpaced); it returns false, queueing nothing, when the
// subscription has no room, unless force (a parked delivery, which its
// lane's window already bounds) or the queue is closed.
func (q *fairQueue) push(d *delivery, pace float64, force bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	key := d.sub
	sq := q.subs[key]
	if sq == nil {
		sq = &subQueue{key: key}
		q.subs[key] = sq
	}
	switch lim := q.paces[key]; {
	case pace <= 0:
		delete(q.paces, key)
		sq.pace = nil
	case lim == nil:
		sq.pace = rate.NewLimiter(rate.Limit(pace), 1)
		q.paces[key] = sq.pace
	default:
		if lim.Limit() != rate.Limit(pace) {
			lim.SetLimit(rate.Limit(pace))
		}
		sq.pace = lim
	}
	if !force && len(sq.waiting) >= q.room(sq) {
		if sq.inflight == 0 && len(sq.waiting) == 0 {
			delete(q.subs, key)
		}
		return false
	}
	sq.waiting = append(sq.waiting, d)
	q.busy++
	q.markReady(sq)
	return true
}

func (q *fairQueue) markReady(sq *subQueue) {
	if !sq.inReady && !sq.pacing && len(sq.waiting) > 0 && sq.inflight < q.perSub {
		sq.inReady = true
		q.ready = append(q.ready, sq)
		q.cond.Signal()
	}
}

// next blocks until a delivery may start, and returns it; false once
// closed.
func (q *fairQueue) next() (*delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var sq *subQueue
	for sq == nil {
		for len(q.ready) == 0 {
			if q.closed {
				return nil, false
			}
			q.cond.Wait()
		}
		sq = q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		sq.inReady = false
		if sq.pace != nil && !sq.paced {
			// Reserve the next token; if it is not due yet, the
			// subscription sits out until it is, and others go first.
			if d := sq.pace.Reserve().Delay(); d > 0 {
				sq.pacing, sq.paced = true, true
				paced := sq
				time.AfterFunc(d, func() {
					q.mu.Lock()
					defer q.mu.Unlock()
					paced.pacing = false
					q.markReady(paced)
				})
				sq = nil
				continue
			}
		}
		sq.paced = false
	}
	d := sq.waiting[0]
	sq.waiting[0] = nil
	sq.waiting = sq.waiting[1:]
	sq.inflight++
	q.markReady(sq)
	return d, true
}

// done ends one of a subscription's attempts in flight, which took took.
// If the subscription turned out slower than its queue assumed, the
// deliveries from the fan-out past its room are taken out and returned, for
// the caller to park (parked ones stay: their lane's window bounds them).
func (q *fairQueue) done(d *delivery, took time.Duration) (evicted []*delivery) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := d.sub
	sq := q.subs[key]
	sq.inflight--
	q.busy--
	if sq.avg == 0 {
		sq.avg = took
	} else {
		sq.avg += (took - sq.avg) / 8
	}
	if room := q.room(sq); len(sq.waiting) > room {
		kept := sq.waiting[:0]
		for i, w := range sq.waiting {
			if i >= room && w.parked == nil {
				evicted = append(evicted, w)
				continue
			}
			kept = append(kept, w)
		}
		clear(sq.waiting[len(kept):])
		sq.waiting = kept
		q.busy -= len(evicted)
	}
	q.signalEmpty()
	if sq.inflight == 0 && len(sq.waiting) == 0 {
		delete(q.subs, key)
		return evicted
	}
	q.markReady(sq)
	return evicted
}

// signalEmpty wakes waitEmpty once nothing waits or runs. Callers hold mu.
func (q *fairQueue) signalEmpty() {
	if q.busy == 0 {
		close(q.empty)
		q.empty = make(chan struct{})
	}
}

// waitEmpty returns once nothing waits or runs, or ctx ends.
func (q *fairQueue) waitEmpty(ctx context.Context) {
	for {
		q.mu.Lock()
		busy, empty := q.busy, q.empty
		q.mu.Unlock()
		if busy == 0 {
			return
		}
		select {
		case <-empty:
		case <-ctx.Done():
			return
		}
	}
}

// close wakes every worker, refuses further pushes and returns the
// deliveries still waiting, for the caller to park or hand back.
func (q *fairQueue) close() []*delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	var left []*delivery
	for _, sq := range q.subs {
		left = append(left, sq.waiting...)
		q.busy -= len(sq.waiting)
		sq.waiting = nil
	}
	q.ready = nil
	q.cond.Broadcast()
	return left
}
