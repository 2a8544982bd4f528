package dispatcher

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/onestack/webhooks/destination"
)

// fairQueue hands deliveries to workers tenant by tenant, then
// subscription by subscription within a tenant, round robin at both
// levels, so a tenant's share of the workers does not grow with its number
// of subscriptions. What may start is bounded at three levels:
//
//   - a subscription: at most perSub attempts in flight, and its pace;
//   - its destination (scheme, host, port, shared by every subscription
//     and tenant sending there): the adaptive limit and the breaker of
//     package destination; a delivery to a destination whose breaker is
//     open comes out shed, for the worker to record as not sent;
//   - its tenant (see allowed, overShare): while another tenant has work, no
//     more than its share (limit) in flight; never more than limit attempts
//     demoted (running longer than the worker pool lends a worker for,
//     see demote), so the sockets an endpoint that hangs can hold are
//     bounded per tenant; and never more than the pool's size divided by
//     the active tenants plus one of the workers, so a tenant that
//     arrives finds a free worker at once (alone, half the pool). Alone,
//     or when every tenant with work is past its share, a tenant may go
//     past its share: the share is work-conserving, the pool's half is
//     not (it is the room kept for a newcomer).
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
	tenants map[string]*tenantQueue
	// ready is the round robin of tenants with a subscription ready and
	// under their share; over the one of those past it, served when no
	// tenant under its share is ready; capped the tenants that may start
	// nothing for now (see allowed).
	ready  []*tenantQueue
	over   []*tenantQueue
	capped []*tenantQueue
	closed bool
	// busy counts deliveries waiting or in flight; empty is signalled
	// when it drops to zero.
	busy  int
	empty chan struct{}
	// waiting counts deliveries waiting, backlogged the subscriptions with
	// some; below is signalled when waiting drops under the budget, if
	// belowWanted (admit waits on it): closed then, and made again.
	waiting     int
	backlogged  int
	below       chan struct{}
	belowWanted bool
	// total is the rate of the whole queue.
	total meter
	// paces outlive the queues, which are dropped when idle: a pace must
	// remember its last token across idle moments.
	paces map[string]*rate.Limiter
	now   func() time.Time

	// workers is the size of the worker pool (zero: no bound by it).
	workers int
	// limit is a tenant's share of attempts in flight (nil: no bound).
	limit func(tenant string) int
	// dests bounds attempts per destination (nil: none); destOf names a
	// delivery's destination, when its subscription queue is made.
	dests   *destination.Tracker
	destOf  func(*delivery) string
	blocked map[string][]*subQueue // by destination: subscriptions at its limit
	// onEvict parks what evictStalled takes out while admit waits (nil:
	// nothing is taken out there).
	onEvict func([]*delivery)
}

// tenantQueue is one tenant's part of the queue.
type tenantQueue struct {
	id    string
	ready []*subQueue // its subscriptions ready to start one, round robin
	// inflight counts its attempts running, demoted those of them running
	// past the worker's lend (see fairQueue.demote).
	inflight, demoted int
	subs              int // its subscription queues in fairQueue.subs
	// limit is its share of attempts in flight (zero: no bound), read as
	// its queue is made and again every limitEvery attempts it starts
	// (started counts them), so a changed limit applies soon.
	limit, started int
	// quietSince is when one of its attempts last ended, or when it
	// started one with none in flight.
	quietSince time.Time
	// in says which of the queue's tenant lists holds it, if any.
	in tenantList
}

// tenantList names the fairQueue list a tenant is in.
type tenantList uint8

const (
	inNone tenantList = iota
	inReady
	inOver
	inCapped
)

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
	tenant   *tenantQueue
	dest     string // its destination; empty: not tracked
	waiting  []*delivery
	inflight int
	inReady  bool
	// blocked: its destination is at its limit, since blockedSince; it
	// is ready again when one of the destination's attempts ends.
	blocked      bool
	blockedSince time.Time
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
		tenants: make(map[string]*tenantQueue), blocked: make(map[string][]*subQueue),
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
	if q.stalled(sq) {
		// Waiting on its destination, which has let nothing through for
		// that long: at most one in that time.
		bound := 1 / q.now().Sub(sq.blockedSince).Seconds()
		if r == 0 || bound < r {
			r = bound
		}
	}
	return r
}

// stallAfter is how long a subscription waits on its destination's limit,
// no attempt of that destination ending, before it counts as slow.
const stallAfter = time.Second

// stalled reports whether sq has waited on its destination's limit for
// stallAfter or more. Callers hold mu.
func (q *fairQueue) stalled(sq *subQueue) bool {
	return sq.blocked && q.now().Sub(sq.blockedSince) >= stallAfter
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
	case sq.slow, n >= slowFactor*room, q.stalled(sq):
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
		q.belowWanted = true
		q.mu.Unlock()
		if q.onEvict == nil {
			select {
			case <-below:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		// Full: deliveries held for destinations that let nothing through
		// must not hold the fan-out (and every other tenant's events) back.
		// Now and then, what they hold past their room is taken out to be
		// parked.
		t := time.NewTimer(stallAfter / 4)
		select {
		case <-below:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			if evicted := q.evictStalled(); len(evicted) > 0 {
				q.onEvict(evicted)
			}
		}
		t.Stop()
	}
}

// evictStalled takes out, for the caller to park, what subscriptions
// stalled on their destination hold past their room, and what the
// subscriptions of a stalled tenant (attempts in flight, none ended for
// stallAfter: every endpoint it sends to hangs) hold past their in-flight
// cap. A busy tenant is never stalled: its attempts end.
func (q *fairQueue) evictStalled() []*delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*delivery
	for _, sq := range q.subs {
		switch {
		case q.stalled(sq):
			out = append(out, q.evictLate(sq)...)
		case q.tenantStalled(sq.tenant):
			out = append(out, q.evictPast(sq, q.perSub)...)
		}
	}
	// Still more than twice maxWait's worth at the rate the queue
	// completes (endpoints that answer, but late): the tenant holding most
	// keeps at most half the budget. Under mere overload the queue holds
	// maxWait's worth and parks nothing.
	if q.waiting > q.budget() && (q.total.rate == 0 || float64(q.waiting) > 2*q.maxWait.Seconds()*q.total.rate) {
		held := make(map[*tenantQueue]int)
		var most *tenantQueue
		for _, sq := range q.subs {
			held[sq.tenant] += len(sq.waiting)
			if most == nil || held[sq.tenant] > held[most] {
				most = sq.tenant
			}
		}
		// It keeps no more than half the budget in all, its in-flight cap
		// per subscription at most.
		keep := max(1, min(q.perSub, q.budget()/(2*max(most.subs, 1))))
		for _, sq := range q.subs {
			if sq.tenant == most {
				out = append(out, q.evictPast(sq, keep)...)
			}
		}
	}
	q.signalEmpty()
	return out
}

// tenantStalled reports whether tq has attempts in flight and none has
// ended for stallAfter. Callers hold mu.
func (q *fairQueue) tenantStalled(tq *tenantQueue) bool {
	return tq.inflight > 0 && q.now().Sub(tq.quietSince) >= stallAfter
}

// evictLate takes out, for the caller to park, the deliveries from the
// fan-out that sq holds past its room if it is slow (see overRoom, judged
// at twice its room so a passing slowdown evicts nothing); parked ones
// stay: their lane's window bounds them. Callers hold mu.
func (q *fairQueue) evictLate(sq *subQueue) (evicted []*delivery) {
	room := q.room(sq)
	if len(sq.waiting) <= 2*room || !q.overRoom(sq, len(sq.waiting)) {
		return nil
	}
	return q.evictPast(sq, room)
}

// evictPast takes out the deliveries from the fan-out that sq holds past
// the first room, for the caller to park, and marks sq slow. Callers hold
// mu.
func (q *fairQueue) evictPast(sq *subQueue, room int) (evicted []*delivery) {
	if len(sq.waiting) <= room {
		return nil
	}
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
	return evicted
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
		sq = q.newSubQueue(d)
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
		q.dropIfIdle(sq)
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

// limitEvery is how many attempts of a tenant start between two readings
// of its limit.
const limitEvery = 1024

// newSubQueue makes the queue of d's subscription, and its tenant's if
// needed. Its destination is named once, here: a subscription whose URL
// changes is tracked at the new one from its next queue. Callers hold mu.
func (q *fairQueue) newSubQueue(d *delivery) *subQueue {
	tq := q.tenants[d.tenant]
	if tq == nil {
		tq = &tenantQueue{id: d.tenant}
		if q.limit != nil {
			tq.limit = max(1, q.limit(d.tenant))
		}
		q.tenants[d.tenant] = tq
		q.recheckCapped() // one more active tenant: shares shrink
	}
	tq.subs++
	sq := &subQueue{key: d.sub, tenant: tq}
	if q.dests != nil && q.destOf != nil {
		sq.dest = q.destOf(d)
	}
	q.subs[d.sub] = sq
	return sq
}

// dropIfIdle forgets sq, and its tenant with its last subscription, once
// nothing of it waits or runs. Callers hold mu.
func (q *fairQueue) dropIfIdle(sq *subQueue) {
	if sq.inflight > 0 || len(sq.waiting) > 0 || sq.blocked || q.subs[sq.key] != sq {
		return
	}
	delete(q.subs, sq.key)
	tq := sq.tenant
	tq.subs--
	if tq.subs == 0 && tq.inflight == 0 && tq.in == inNone {
		delete(q.tenants, tq.id)
		q.recheckCapped() // one fewer active tenant: shares grow
	}
}

// markReady puts sq in its tenant's round robin if it may start an
// attempt. Callers hold mu.
func (q *fairQueue) markReady(sq *subQueue) {
	if !sq.inReady && !sq.pacing && !sq.blocked && len(sq.waiting) > 0 && sq.inflight < q.perSub {
		sq.inReady = true
		sq.tenant.ready = append(sq.tenant.ready, sq)
		q.markTenant(sq.tenant)
	}
}

// markTenant puts tq in the tenants' round robin if a subscription of it
// is ready and it is in no list. Callers hold mu.
func (q *fairQueue) markTenant(tq *tenantQueue) {
	if tq.in == inNone && len(tq.ready) > 0 {
		tq.in = inReady
		q.ready = append(q.ready, tq)
		q.cond.Signal()
	}
}

// allowed reports whether tq may start one more attempt at all: it has
// fewer attempts demoted than its limit, and holds fewer workers than
// would leave a newcomer its share of the pool, pool/(active tenants+1).
// Callers hold mu.
func (q *fairQueue) allowed(tq *tenantQueue) bool {
	if tq.limit > 0 && tq.demoted >= tq.limit {
		return false
	}
	return q.workers <= 0 || tq.inflight-tq.demoted < max(1, q.workers/(len(q.tenants)+1))
}

// overShare reports whether tq has its share of attempts in flight or
// more: it then goes only when no tenant under its share is ready.
// Callers hold mu.
func (q *fairQueue) overShare(tq *tenantQueue) bool {
	return tq.limit > 0 && tq.inflight >= tq.limit
}

// recheckCapped lets every capped tenant that is allowed again back into
// the round robin (the number of active tenants changed). Callers hold mu.
func (q *fairQueue) recheckCapped() {
	kept := q.capped[:0]
	for _, tq := range q.capped {
		if q.allowed(tq) {
			tq.in = inNone
			q.markTenant(tq)
			continue
		}
		kept = append(kept, tq)
	}
	clear(q.capped[len(kept):])
	q.capped = kept
}

// recheck moves tq after one of its attempts ended or was demoted: out of
// capped if it is allowed again, out of over if it is under its share
// again. Callers hold mu.
func (q *fairQueue) recheck(tq *tenantQueue) {
	switch {
	case tq.in == inCapped && q.allowed(tq):
		q.capped = remove(q.capped, tq)
	case tq.in == inOver && !q.overShare(tq):
		q.over = remove(q.over, tq)
	default:
		return
	}
	tq.in = inNone
	q.markTenant(tq)
}

// remove deletes tq from list.
func remove(list []*tenantQueue, tq *tenantQueue) []*tenantQueue {
	i := slices.Index(list, tq)
	if i < 0 {
		return list
	}
	return slices.Delete(list, i, i+1)
}

// pop takes the first of *list (a round robin of tenants, or a
// tenant's ready subscriptions).
func pop[T any](list *[]*T) *T {
	l := *list
	v := l[0]
	l[0] = nil
	if len(l) == 1 {
		// Emptied, it keeps its array from here: the next append, the
		// usual one-in one-out of a lightly loaded queue, fills it
		// again, where the slice past it would have no room left after
		// as many pops as the array had slots, and allocate each time.
		*list = l[:0]
	} else {
		*list = l[1:]
	}
	return v
}

// next blocks until a delivery may start, and returns it; false once
// closed. A delivery to a destination whose breaker is open comes out
// with shed set: the caller records it as not sent.
func (q *fairQueue) next() (*delivery, bool) { return q.take(true) }

// take is next; without wait it returns false at once where next would
// wait.
func (q *fairQueue) take(wait bool) (*delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.ready) == 0 && len(q.over) == 0 {
			if q.closed || !wait {
				return nil, false
			}
			q.cond.Wait()
		}
		var tq *tenantQueue
		if len(q.ready) > 0 {
			tq = pop(&q.ready)
		} else {
			tq = pop(&q.over) // nobody under its share is ready: work-conserving
		}
		from := tq.in
		tq.in = inNone
		switch {
		case !q.allowed(tq):
			tq.in = inCapped
			q.capped = append(q.capped, tq)
			continue
		case from == inReady && q.overShare(tq):
			tq.in = inOver
			q.over = append(q.over, tq)
			continue
		}
		sq := pop(&tq.ready)
		sq.inReady = false
		if len(sq.waiting) == 0 { // taken out meanwhile (takeParked)
			q.dropIfIdle(sq)
			q.markTenant(tq)
			continue
		}
		if sq.pace != nil && !sq.paced {
			// Reserve the next token; if it is not due yet, the
			// subscription sits out until it is, and others go first.
			sq.paced = true
			if d := sq.pace.Reserve().Delay(); d > 0 {
				sq.pacing = true
				paced := sq
				time.AfterFunc(d, func() {
					q.mu.Lock()
					defer q.mu.Unlock()
					paced.pacing = false
					q.markReady(paced)
				})
				q.markTenant(tq)
				continue
			}
		}
		now := q.now()
		shed := false
		if sq.dest != "" {
			switch q.dests.Start(sq.dest) {
			case destination.Wait:
				// Ready again when one of the destination's attempts ends;
				// a token already reserved stays reserved.
				sq.blocked, sq.blockedSince = true, now
				q.blocked[sq.dest] = append(q.blocked[sq.dest], sq)
				q.markTenant(tq)
				continue
			case destination.Shed:
				shed = true
			}
		}
		sq.paced = false
		d := sq.waiting[0]
		sq.waiting[0] = nil
		sq.waiting = sq.waiting[1:]
		q.dequeued(sq, 1)
		if sq.inflight == 0 {
			sq.quietSince = now
		}
		sq.inflight++
		if tq.inflight == 0 {
			tq.quietSince = now
		}
		tq.inflight++
		if tq.started++; tq.started%limitEvery == 0 && q.limit != nil {
			tq.limit = max(1, q.limit(tq.id))
		}
		d.shed, d.started, d.dest = shed, now, sq.dest
		q.markReady(sq)
		q.markTenant(tq)
		return d, true
	}
}

// demote tells the queue that d, in flight, has run past the time a worker
// is lent for: its worker is handed to the pool (the caller starts one
// more) and the attempt counts against its tenant's demoted bound until
// done, which the caller tells by setting d.demoted before done. It
// reports false, changing nothing, once the queue is closed.
func (q *fairQueue) demote(d *delivery) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	sq := q.subs[d.sub]
	if q.closed || sq == nil {
		return false
	}
	sq.tenant.demoted++
	q.recheck(sq.tenant) // one worker fewer held: it may be allowed again
	return true
}

// unblock makes every subscription waiting on dest ready again, after one
// of its attempts ended. Callers hold mu.
func (q *fairQueue) unblock(dest string) {
	subs := q.blocked[dest]
	if len(subs) == 0 {
		return
	}
	delete(q.blocked, dest)
	for _, sq := range subs {
		sq.blocked = false
		q.markReady(sq)
		q.dropIfIdle(sq)
	}
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
	if q.belowWanted && q.waiting < q.budget() {
		close(q.below)
		q.below, q.belowWanted = make(chan struct{}), false
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
	tq := sq.tenant
	sq.inflight--
	tq.inflight--
	if d.demoted {
		tq.demoted--
	}
	q.busy--
	if d.dest != "" && !d.shed {
		q.dests.Done(d.dest, d.started, d.outcome)
		q.unblock(d.dest)
	}
	now := q.now()
	sq.quietSince, tq.quietSince = now, now
	if !d.shed {
		// A delivery shed by an open breaker was not sent: it says
		// nothing of how fast work completes.
		sq.speed.tick(now, len(sq.waiting) > 0)
		q.total.tick(now, q.waiting > 0)
	}
	evicted = q.evictLate(sq)
	if len(sq.waiting) == 0 {
		sq.slow = false // its backlog cleared: judged afresh
	}
	q.signalEmpty()
	q.recheck(tq)
	if sq.inflight == 0 && len(sq.waiting) == 0 {
		q.dropIfIdle(sq)
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
	q.ready, q.over, q.capped = nil, nil, nil
	q.cond.Broadcast()
	close(q.below)
	q.below, q.belowWanted = make(chan struct{}), false
	return left
}
