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
// It also decides what waits in memory, from rates it measures (attempts
// completed per second while deliveries were waiting), never from attempt
// durations, which a busy machine inflates for everyone:
//
//   - The whole queue holds about maxWait's worth of work at the rate the
//     workers complete it (at least minBudget): admit holds the fan-out
//     back past that, so under overload events wait in the stream, where
//     they are already stored, instead of in memory or in parked copies.
//   - A subscription may keep about maxWait's worth at its own rate (its
//     room). Past it, a delivery is parked (stored once, read back at the
//     subscription's pace) only if the subscription is slow: its rate is
//     well below the fair share of the others, or it holds more than
//     slowFactor times its room. A merely busy machine parks nothing; a
//     slow endpoint cannot hold the events every tenant's deliveries share.
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
	// waiting counts deliveries waiting, backlogged the subscriptions with
	// some; below is signalled when waiting drops under the budget.
	waiting    int
	backlogged int
	below      chan struct{}
	// total is the rate of the whole queue.
	total meter
	// paces outlive the queues, which are dropped when idle: a pace must
	// remember its last token across idle moments.
	paces map[string]*rate.Limiter
	now   func() time.Time
}

// Bounds of what waits in memory.
const (
	// rateWindow is the least time over which a completion rate is
	// measured.
	rateWindow = 200 * time.Millisecond
	// minBudget is what the queue may always hold, whatever its rate.
	minBudget = 2048
	// slowFactor: a subscription completing less than 1/slowFactor of the
	// fair share, or holding more than slowFactor times its room, is slow.
	slowFactor = 4
)

// meter measures completions per second while deliveries were waiting.
type meter struct {
	rate  float64 // moving average, zero until first measured
	count int
	since time.Time
}

// tick counts one completion at now, while work waited (or not: idle
// moments say nothing of speed and restart the window).
func (m *meter) tick(now time.Time, waited bool) {
	if !waited {
		m.count, m.since = 0, now
		return
	}
	if m.since.IsZero() {
		m.since = now
	}
	m.count++
	elapsed := now.Sub(m.since)
	if elapsed < rateWindow {
		return
	}
	r := float64(m.count) / elapsed.Seconds()
	if m.rate == 0 {
		m.rate = r
	} else {
		m.rate += (r - m.rate) / 4
	}
	m.count, m.since = 0, now
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
	speed  meter
	// quietSince is when the subscription last completed an attempt, or
	// started one with none in flight: an endpoint that has answered
	// nothing for a while is at most inflight/(that long) fast, known
	// before its first answer comes.
	quietSince time.Time
	// slow is set once the subscription was found slow, until its backlog
	// clears: from then on it keeps no more than its room.
	slow bool
}

func newFairQueue(perSub, maxLen int, maxWait time.Duration) *fairQueue {
	q := &fairQueue{perSub: perSub, maxLen: maxLen, maxWait: maxWait, subs: make(map[string]*subQueue),
		paces: make(map[string]*rate.Limiter), empty: make(chan struct{}), below: make(chan struct{}), now: time.Now}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// speedOf is sq's completion rate: the one measured, or less if its
// attempts have gone unanswered long enough to prove it slower (zero:
// not known yet). Callers hold mu.
func (q *fairQueue) speedOf(sq *subQueue) float64 {
	r := sq.speed.rate
	if sq.inflight > 0 && !sq.quietSince.IsZero() {
		if quiet := q.now().Sub(sq.quietSince); quiet > rateWindow {
			bound := float64(sq.inflight) / quiet.Seconds()
			if r == 0 || bound < r {
				r = bound
			}
		}
	}
	return r
}

// room is how many deliveries sq may keep waiting: about maxWait's worth at
// the endpoint's speed and at its pace. Callers hold mu.
func (q *fairQueue) room(sq *subQueue) int {
	n := q.maxLen
	if r := q.speedOf(sq); r > 0 {
		n = min(n, max(int(q.maxWait.Seconds()*r), q.perSub))
	}
	if sq.pace != nil {
		n = min(n, max(int(q.maxWait.Seconds()*float64(sq.pace.Limit())), 1))
	}
	return n
}

// overRoom reports whether sq, holding n deliveries, has no room for more:
// past its room while slow, or past its hard cap. Callers hold mu.
func (q *fairQueue) overRoom(sq *subQueue, n int) bool {
	room := q.room(sq)
	switch {
	case n >= q.maxLen:
		return true
	case n < room:
		return false
	case sq.slow, n >= slowFactor*room:
		return true
	}
	fair := q.total.rate / float64(max(q.backlogged, 1))
	r := q.speedOf(sq)
	return r > 0 && r*slowFactor < fair
}

// budget is how many deliveries the whole queue holds before admit waits.
// Callers hold mu.
func (q *fairQueue) budget() int {
	return max(minBudget, int(q.maxWait.Seconds()*q.total.rate))
}

// admit waits until the queue holds less than its budget, or ctx ends or
// the queue closes; the fan-out calls it before reading each event.
func (q *fairQueue) admit(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return context.Canceled
		}
		if q.waiting < q.budget() {
			q.mu.Unlock()
			return nil
		}
		below := q.below
		q.mu.Unlock()
		select {
		case <-below:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// push queues d for a subscription paced at pace deliveries per second
// (zero: unpaced); it returns false, queueing nothing, when the
// subscription has no room, unless force (a parked delivery, which its
// lane's window already bounds). A closed queue takes nothing.
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
	if !force && q.overRoom(sq, len(sq.waiting)) {
		if sq.inflight == 0 && len(sq.waiting) == 0 {
			delete(q.subs, key)
		}
		return false
	}
	if len(sq.waiting) == 0 {
		q.backlogged++
	}
	sq.waiting = append(sq.waiting, d)
	q.busy++
	q.waiting++
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
	q.dequeued(sq, 1)
	if sq.inflight == 0 {
		sq.quietSince = q.now()
	}
	sq.inflight++
	q.markReady(sq)
	return d, true
}

// dequeued accounts for n deliveries leaving sq's waiting list. Callers
// hold mu.
func (q *fairQueue) dequeued(sq *subQueue, n int) {
	if n == 0 {
		return
	}
	q.waiting -= n
	if len(sq.waiting) == 0 {
		q.backlogged--
	}
	if q.waiting < q.budget() {
		close(q.below)
		q.below = make(chan struct{})
	}
}

// done ends one of a subscription's attempts in flight. If the
// subscription turned out slow (see overRoom, judged at twice its room so
// a passing slowdown evicts nothing), the deliveries from the fan-out past
// its room are taken out and returned, for the caller to park (parked ones
// stay: their lane's window bounds them).
func (q *fairQueue) done(d *delivery) (evicted []*delivery) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := d.sub
	sq := q.subs[key]
	sq.inflight--
	q.busy--
	now := q.now()
	sq.quietSince = now
	sq.speed.tick(now, len(sq.waiting) > 0)
	q.total.tick(now, q.waiting > 0)
	if room := q.room(sq); len(sq.waiting) > 2*room && q.overRoom(sq, len(sq.waiting)) {
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
		sq.slow = true
		q.busy -= len(evicted)
		q.dequeued(sq, len(evicted))
	}
	if len(sq.waiting) == 0 {
		sq.slow = false // its backlog cleared: judged afresh
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

// takeParked takes out every waiting delivery read from a lane, for the
// caller to hand back: at a stop, a lane's next owner then delivers them,
// at its pace and in its order, instead of this replica beside it.
func (q *fairQueue) takeParked() []*delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*delivery
	for _, sq := range q.subs {
		kept := sq.waiting[:0]
		for _, d := range sq.waiting {
			if d.parked != nil {
				out = append(out, d)
			} else {
				kept = append(kept, d)
			}
		}
		n := len(sq.waiting) - len(kept)
		clear(sq.waiting[len(kept):])
		sq.waiting = kept
		q.busy -= n
		q.dequeued(sq, n)
	}
	q.signalEmpty()
	return out
}

// close wakes every worker and the fan-out, refuses further pushes and
// returns the deliveries still waiting, for the caller to park or hand
// back.
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
	q.waiting, q.backlogged = 0, 0
	q.ready = nil
	q.cond.Broadcast()
	close(q.below)
	q.below = make(chan struct{})
	return left
}
