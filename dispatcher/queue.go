package dispatcher

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nats-io/nats.go/jetstream"
)

// fairQueue hands tasks to workers one subscription at a time, round robin,
// with at most perSub of one subscription's tasks in flight. A subscription
// whose endpoint is slow therefore holds at most perSub workers, and the
// others keep flowing.
//
// How many tasks one subscription may keep waiting in memory follows its
// endpoint's speed: no more than would wait about maxWait, judged by a
// moving average of its attempts' durations, and never more than maxLen. A
// fast endpoint can absorb a burst; a slow one keeps only a few, so it
// cannot hold the consumer's MaxAckPending that every tenant shares.
type fairQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	perSub  int
	maxLen  int
	maxWait time.Duration
	subs    map[string]*subQueue
	ready   []*subQueue // subscriptions with waiting tasks and room in flight
	closed  bool
	// paces outlive the queues, which are dropped when idle: a pace must
	// remember its last token across idle moments.
	paces map[string]*rate.Limiter
}

type subQueue struct {
	key      string
	waiting  []task
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
	q := &fairQueue{perSub: perSub, maxLen: maxLen, maxWait: maxWait, subs: make(map[string]*subQueue), paces: make(map[string]*rate.Limiter)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// room is how many tasks sq may keep waiting: about maxWait's worth at
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

// push queues t for a subscription paced at pace deliveries per second
// (zero: unpaced); it returns false, queueing nothing, when the
// subscription has no room.
func (q *fairQueue) push(t task, pace float64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := t.tenant + "." + t.sub
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
	if len(sq.waiting) >= q.room(sq) {
		if sq.inflight == 0 && len(sq.waiting) == 0 {
			delete(q.subs, key)
		}
		return false
	}
	sq.waiting = append(sq.waiting, t)
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

// next blocks until a task may start, and returns it; false once closed
// and empty of ready work.
func (q *fairQueue) next() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var sq *subQueue
	for sq == nil {
		for len(q.ready) == 0 {
			if q.closed {
				return task{}, false
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
	t := sq.waiting[0]
	sq.waiting[0] = task{}
	sq.waiting = sq.waiting[1:]
	sq.inflight++
	q.markReady(sq)
	return t, true
}

// done ends one of a subscription's tasks in flight, which took took. If
// the subscription turned out slower than its queue assumed, the tasks past
// its room are taken out and returned, for the caller to defer.
func (q *fairQueue) done(t task, took time.Duration) (evicted []task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := t.tenant + "." + t.sub
	sq := q.subs[key]
	sq.inflight--
	if sq.avg == 0 {
		sq.avg = took
	} else {
		sq.avg += (took - sq.avg) / 8
	}
	if room := q.room(sq); len(sq.waiting) > room {
		evicted = append(evicted, sq.waiting[room:]...)
		clear(sq.waiting[room:])
		sq.waiting = sq.waiting[:room]
	}
	if sq.inflight == 0 && len(sq.waiting) == 0 {
		delete(q.subs, key)
		return evicted
	}
	q.markReady(sq)
	return evicted
}

// close wakes every worker; the tasks still waiting are returned so the
// caller can hand them back to the stream.
func (q *fairQueue) close() []task {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	var left []task
	for _, sq := range q.subs {
		left = append(left, sq.waiting...)
		sq.waiting = nil
	}
	q.ready = nil
	q.cond.Broadcast()
	return left
}

// waitingMsgs returns the messages of every waiting task, so the caller
// can talk to JetStream about them without holding the queue's lock.
func (q *fairQueue) waitingMsgs() []jetstream.Msg {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []jetstream.Msg
	for _, sq := range q.subs {
		for _, t := range sq.waiting {
			out = append(out, t.msg)
		}
	}
	return out
}
