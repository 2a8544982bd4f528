package dispatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/destination"
)

// fakeMsg stands for a parked record's message in queue tests.
type fakeMsg struct{ jetstream.Msg }

func tk(sub string, n int) *delivery { return &delivery{tenant: "t", sub: sub, attempt: n} }

func TestFairQueueRoundRobinAndCap(t *testing.T) {
	q := newFairQueue(2, 100, 5*time.Second)
	for i := range 4 {
		q.push(tk("a", i), 0, false)
	}
	q.push(tk("b", 0), 0, false)
	var order []string
	for range 3 {
		got, _ := q.next()
		order = append(order, got.sub)
	}
	// a, b, a: round robin; then a is at its cap of 2 in flight.
	if want := []string{"a", "b", "a"}; order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Errorf("order = %v, want %v", order, want)
	}
	q.mu.Lock()
	ready := len(q.ready)
	q.mu.Unlock()
	if ready != 0 {
		t.Errorf("%d subscriptions ready with a at its in-flight cap and b empty, want 0", ready)
	}
	q.done(tk("a", 0))
	if got, _ := q.next(); got.sub != "a" {
		t.Errorf("after a finished one, next = %q, want a", got.sub)
	}
}

// TestFairQueueRoomFollowsEndpointSpeed: how many deliveries wait in
// memory follows the rate at which the subscription's attempts complete
// while it has work waiting. Alone, a subscription is slow only past
// slowFactor times its room; then the deliveries from the fan-out past its
// room are evicted, for parking, newest first, none lost.
func TestFairQueueRoomFollowsEndpointSpeed(t *testing.T) {
	tests := []struct {
		name   string
		every  time.Duration // between completions
		evicts bool
	}{
		{"fast endpoint keeps a burst", 2 * time.Millisecond, false},
		{"slow endpoint keeps 5 s worth", 100 * time.Millisecond, true},
		{"dead endpoint keeps its in-flight cap", 15 * time.Second, true},
	}
	const queued = 650
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			q := newFairQueue(2, 1000, 5*time.Second)
			q.now = func() time.Time { return clock }
			for i := range queued {
				if !q.push(tk("a", i), 0, false) {
					t.Fatalf("push #%d refused before the endpoint's speed was known", i)
				}
			}
			var evicted []*delivery
			taken := 0
			for range 20 {
				q.mu.Lock()
				left := len(q.subs["a"].waiting)
				q.mu.Unlock()
				if left <= 2 {
					break
				}
				d, _ := q.next()
				taken++
				clock = clock.Add(tt.every)
				evicted = append(evicted, q.done(d)...)
			}
			q.mu.Lock()
			sq := q.subs["a"]
			waiting, room := sq.waiting, q.room(sq)
			q.mu.Unlock()
			if got := len(evicted) > 0; got != tt.evicts {
				t.Fatalf("completions every %v evicted %d (room %d), want eviction %v", tt.every, len(evicted), room, tt.evicts)
			}
			if len(waiting)+len(evicted)+taken != queued {
				t.Errorf("%d waiting + %d evicted + %d taken, want %d: none lost", len(waiting), len(evicted), taken, queued)
			}
			for _, e := range evicted {
				if e.attempt <= waiting[len(waiting)-1].attempt {
					t.Fatalf("evicted #%d while #%d waits: want the newest evicted", e.attempt, waiting[len(waiting)-1].attempt)
				}
			}
			if tt.evicts && q.push(tk("a", -1), 0, false) {
				t.Error("push accepted past the room of a slow endpoint")
			}
		})
	}
}

// TestFairQueueBusyMachineParksNothing: two subscriptions completing at
// the same modest rate (a machine at its limit) keep long queues without
// refusing anything, while one completing far below the fair share of the
// others is refused past its room.
func TestFairQueueBusyMachineParksNothing(t *testing.T) {
	clock := time.Unix(0, 0)
	q := newFairQueue(4, 100_000, 5*time.Second)
	q.now = func() time.Time { return clock }
	for i := range 3000 {
		for _, sub := range []string{"a", "b", "slow"} {
			q.push(tk(sub, i), 0, false)
		}
	}
	// a and b complete 100 a second each, slow 2 a second.
	for step := range 2000 {
		clock = clock.Add(5 * time.Millisecond)
		subs := []string{"a", "b"}
		if step%50 == 0 {
			subs = append(subs, "slow")
		}
		for _, sub := range subs {
			q.mu.Lock()
			sq := q.subs[sub]
			d := sq.waiting[0]
			sq.waiting = sq.waiting[1:]
			q.dequeued(sq, 1)
			sq.inflight++
			sq.tenant.inflight++
			q.mu.Unlock()
			if ev := q.done(d); len(ev) > 0 && sub != "slow" {
				t.Fatalf("%s evicted %d at step %d: a busy machine parks nothing", sub, len(ev), step)
			}
		}
	}
	for _, sub := range []string{"a", "b"} {
		if !q.push(tk(sub, -1), 0, false) {
			t.Errorf("%s refused a delivery with 5 s worth of work at its rate waiting", sub)
		}
	}
	q.mu.Lock()
	sq := q.subs["slow"]
	free := q.room(sq) - len(sq.waiting)
	q.mu.Unlock()
	for i := range free + 1 {
		if !q.push(tk("slow", -1), 0, false) {
			if i < free {
				t.Errorf("slow subscription refused its %d-th delivery with room for %d", i+1, free)
			}
			return
		}
	}
	t.Error("slow subscription, far below its fair share, accepted past its room")
}

// TestFairQueueAdmitHoldsTheFanoutBack: past its budget the queue holds
// the fan-out back until workers take deliveries out.
func TestFairQueueAdmitHoldsTheFanoutBack(t *testing.T) {
	q := newFairQueue(4, 100_000, 5*time.Second)
	for i := range minBudget {
		q.push(tk("a", i), 0, false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.admit(ctx); err == nil {
		t.Fatal("admit returned with the queue at its budget")
	}
	admitted := make(chan error, 1)
	go func() { admitted <- q.admit(context.Background()) }()
	d, _ := q.next()
	if err := <-admitted; err != nil {
		t.Fatalf("admit after a delivery was taken = %v", err)
	}
	q.done(d)
}

func TestFairQueueHardCap(t *testing.T) {
	q := newFairQueue(2, 3, 5*time.Second)
	for i := range 3 {
		if !q.push(tk("a", i), 0, false) {
			t.Fatalf("push #%d refused under the cap", i)
		}
	}
	if q.push(tk("a", 3), 0, false) {
		t.Error("push past the hard cap accepted")
	}
	if !q.push(tk("b", 0), 0, false) {
		t.Error("another subscription refused because of a's cap")
	}
}

// TestFairQueuePace: a paced subscription sits out until its next token is
// due while another subscription's delivery goes first.
func TestFairQueuePace(t *testing.T) {
	q := newFairQueue(4, 100, 5*time.Second)
	q.push(tk("slow", 0), 1, false) // one per second
	q.push(tk("slow", 1), 1, false)
	first, _ := q.next()
	q.done(first)
	q.push(tk("other", 0), 0, false)
	if got, _ := q.next(); got.sub != "other" {
		t.Fatalf("next = %q, want the unpaced subscription while the paced one waits for its token", got.sub)
	}
	got, _ := q.next() // blocks until the paced token is due
	if got.sub != "slow" || got.attempt != 1 {
		t.Errorf("next = %+v, want slow's second delivery once its token is due", got)
	}
	q.mu.Lock()
	room := q.room(q.subs["slow"])
	q.mu.Unlock()
	if room != 5 {
		t.Errorf("room of a subscription paced at 1/s = %d, want 5 (5 s at its pace)", room)
	}
}

// TestFairQueueKeepsParkedDeliveries: when an endpoint turns out slow,
// only deliveries from the fan-out are evicted to be parked; parked ones
// stay (their lane's window bounds them), and a forced push is never
// refused.
func TestFairQueueKeepsParkedDeliveries(t *testing.T) {
	q := newFairQueue(1, 1000, 5*time.Second)
	parked := &delivery{tenant: "t", sub: "a", parked: fakeMsg{}}
	for i := range 4 {
		if !q.push(tk("a", i), 0, false) {
			t.Fatal("push refused")
		}
	}
	if !q.push(parked, 0, true) {
		t.Fatal("forced push refused")
	}
	first, _ := q.next()
	q.mu.Lock()
	q.subs["a"].speed.rate = 0.1 // one completion in 10 s: room falls to the in-flight cap
	q.mu.Unlock()
	evicted := q.done(first)
	if len(evicted) != 2 {
		t.Errorf("evicted %d deliveries, want the 2 from the fan-out past the room of 1", len(evicted))
	}
	for _, e := range evicted {
		if e == parked {
			t.Error("a parked delivery was evicted")
		}
	}
	for i := range 5 {
		if !q.push(&delivery{tenant: "t", sub: "a", attempt: i, parked: fakeMsg{}}, 0, true) {
			t.Fatalf("forced push #%d refused", i)
		}
	}
	if left := q.close(); len(left) != 2+5 {
		t.Errorf("close returned %d waiting deliveries, want 7", len(left))
	}
	if q.push(tk("a", 9), 0, true) {
		t.Error("push accepted after close")
	}
}

// TestFairQueueWaitEmpty: waitEmpty returns once every delivery pushed has
// been taken and done.
func TestFairQueueWaitEmpty(t *testing.T) {
	q := newFairQueue(4, 100, time.Second)
	for i := range 3 {
		q.push(tk("a", i), 0, false)
	}
	done := make(chan struct{})
	go func() { q.waitEmpty(context.Background()); close(done) }()
	for range 3 {
		d, _ := q.next()
		select {
		case <-done:
			t.Fatal("waitEmpty returned with deliveries in flight")
		default:
		}
		q.done(d)
	}
	<-done
}

// TestFairQueueUnansweredEndpointIsSlowBeforeItsFirstAnswer: an endpoint
// whose attempts have all gone unanswered for a while gets no more room
// than that silence allows, before any attempt of it ends.
func TestFairQueueUnansweredEndpointIsSlowBeforeItsFirstAnswer(t *testing.T) {
	clock := time.Unix(0, 0)
	q := newFairQueue(4, 10_000, 5*time.Second)
	q.now = func() time.Time { return clock }
	for i := range 100 {
		q.push(tk("dead", i), 0, false)
	}
	for range 4 {
		q.next() // four attempts in flight, none answered
	}
	clock = clock.Add(10 * time.Second) // at most 0.4 a second: room 4
	pushed := 0
	for q.push(tk("dead", -1), 0, false) {
		pushed++
	}
	if pushed != 0 {
		t.Errorf("pushed %d more to an endpoint silent for 10 s with 96 waiting, want none", pushed)
	}
	q.mu.Lock()
	room := q.room(q.subs["dead"])
	q.mu.Unlock()
	if room != 4 {
		t.Errorf("room of an endpoint silent for 10 s with 4 in flight = %d, want 4 (its in-flight cap)", room)
	}
}

// td is a delivery of tenant to sub, for the tenant-level tests.
func td(tenant, sub string) *delivery { return &delivery{tenant: tenant, sub: sub, attempt: 1} }

// mustTake is next for tests that expect a delivery to be ready: it fails
// at once instead of waiting for one.
func mustTake(t *testing.T, q *fairQueue) *delivery {
	t.Helper()
	d, ok := q.take(false)
	if !ok {
		t.Fatal("no delivery ready")
	}
	return d
}

// TestFairQueueTenantsTakeTurns: tenants take turns whatever their number
// of subscriptions, and a tenant past its share yields to one under it.
func TestFairQueueTenantsTakeTurns(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		push  []*delivery
		want  []string // tenants in the order next returns them
	}{
		{
			name:  "a tenant with many subscriptions gets one turn of the tenants",
			limit: 100,
			push: []*delivery{
				td("a", "a1"), td("a", "a2"), td("a", "a3"), td("a", "a4"), td("b", "b1"), td("b", "b1"),
			},
			want: []string{"a", "b", "a", "b", "a", "a"},
		},
		{
			name:  "alone, a tenant goes past its share",
			limit: 1,
			push:  []*delivery{td("a", "a1"), td("a", "a2"), td("a", "a3")},
			want:  []string{"a", "a", "a"},
		},
		{
			name:  "past their shares, tenants take turns",
			limit: 1,
			push:  []*delivery{td("a", "a1"), td("a", "a2"), td("b", "b1"), td("b", "b2"), td("a", "a3")},
			want:  []string{"a", "b", "a", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFairQueue(64, 1000, 5*time.Second)
			q.limit = func(string) int { return tt.limit }
			for _, d := range tt.push {
				q.push(d, 0, false)
			}
			var got []string
			for range len(tt.want) {
				got = append(got, mustTake(t, q).tenant)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tenants in order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFairQueueUnderShareGoesFirst: a tenant under its share goes before
// every tenant past theirs.
func TestFairQueueUnderShareGoesFirst(t *testing.T) {
	q := newFairQueue(64, 1000, 5*time.Second)
	q.limit = func(string) int { return 2 }
	for i := range 6 {
		q.push(td("a", fmt.Sprintf("a%d", i)), 0, false)
		q.push(td("b", fmt.Sprintf("b%d", i)), 0, false)
	}
	for range 6 {
		mustTake(t, q)
	}
	q.push(td("c", "c1"), 0, false)
	q.push(td("c", "c2"), 0, false)
	for i := range 2 {
		if d := mustTake(t, q); d.tenant != "c" {
			t.Errorf("next #%d = tenant %q with a and b past their share, want c", i, d.tenant)
		}
	}
}

// TestFairQueueNewcomerGoesNext: a tenant that has taken every delivery it
// could alone does not delay one that arrives: the newcomer's delivery is
// the next one out, and a free worker is left for it.
func TestFairQueueNewcomerGoesNext(t *testing.T) {
	q := newFairQueue(64, 1000, 5*time.Second)
	q.workers = 8
	q.limit = func(string) int { return 256 }
	for i := range 50 {
		q.push(td("noisy", fmt.Sprintf("s%d", i%10)), 0, false)
	}
	taken := 0
	for { // until next would wait: alone, the tenant keeps half the pool free
		if _, ok := q.take(false); !ok {
			break
		}
		taken++
	}
	if taken != 4 {
		t.Errorf("a tenant alone took %d of 8 workers, want 4 (the pool over the active tenants plus one)", taken)
	}
	q.push(td("quiet", "q1"), 0, false)
	if d := mustTake(t, q); d.tenant != "quiet" {
		t.Errorf("next = tenant %q, want the newcomer", d.tenant)
	}
}

// TestFairQueueDemotedBound: attempts demoted (past the worker's lend)
// free their worker but count against the tenant's bound, even alone.
func TestFairQueueDemotedBound(t *testing.T) {
	q := newFairQueue(64, 1000, 5*time.Second)
	q.workers = 4
	q.limit = func(string) int { return 3 }
	for i := range 10 {
		q.push(td("a", fmt.Sprintf("s%d", i)), 0, false)
	}
	var hung []*delivery
	for range 3 {
		d := mustTake(t, q)
		if len(hung) < 2 && !q.demote(d) {
			t.Fatal("demote refused on an open queue")
		}
		hung = append(hung, d)
	}
	if !q.demote(hung[2]) {
		t.Fatal("demote refused")
	}
	if _, ok := q.take(false); ok {
		t.Fatalf("tenant with 3 attempts demoted, its bound, was given another")
	}
	hung[0].demoted = true
	q.done(hung[0])
	mustTake(t, q) // one demoted attempt ended: a may start another
}

// TestFairQueueDestinations: subscriptions of different tenants sending to
// one destination share its limit; an open breaker sheds.
func TestFairQueueDestinations(t *testing.T) {
	clock := time.Unix(0, 0)
	q := newFairQueue(64, 1000, 5*time.Second)
	q.now = func() time.Time { return clock }
	q.dests = destination.New(destination.Config{Initial: 1, OpenAfter: 1, ProbeEvery: time.Minute, Now: func() time.Time { return clock }})
	q.destOf = func(d *delivery) string { return "https://host:443" }
	q.push(td("a", "a1"), 0, false)
	q.push(td("b", "b1"), 0, false)
	first := mustTake(t, q)
	if _, ok := q.take(false); ok {
		t.Fatalf("a second subscription to a destination at its limit of 1 was given one")
	}
	first.outcome = destination.Failed
	q.done(first) // the breaker opens
	second := mustTake(t, q)
	if !second.shed {
		t.Errorf("a delivery to a destination whose breaker is open came out not shed")
	}
	if second.tenant == first.tenant {
		t.Errorf("the blocked subscription was not the one made ready")
	}
}

// TestFairQueueEvictsStalledTenants: while the fan-out waits for room, a
// tenant whose attempts in flight have all gone unanswered for a second
// keeps no more than its in-flight cap per subscription in memory; a busy
// tenant, whose attempts end, keeps all it holds.
func TestFairQueueEvictsStalledTenants(t *testing.T) {
	tests := []struct {
		name      string
		completes bool // one of its attempts ends just before the check
		want      int
	}{
		{"stalled tenant", false, 300 - 2 - 64},
		{"busy tenant", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			q := newFairQueue(64, 10_000, 5*time.Second)
			q.now = func() time.Time { return clock }
			for range 300 {
				q.push(td("a", "a1"), 0, false)
			}
			first := mustTake(t, q)
			mustTake(t, q)
			clock = clock.Add(2 * time.Second)
			if tt.completes {
				q.done(first)
			}
			if got := len(q.evictStalled()); got != tt.want {
				t.Errorf("evictStalled took out %d, want %d", got, tt.want)
			}
		})
	}
}

// TestFairQueueEvictsTheLargestTenantWhenLate: past twice maxWait's worth
// of work at the queue's rate, the tenant holding most keeps its in-flight
// cap per subscription; at maxWait's worth (overload) nothing is taken.
func TestFairQueueEvictsTheLargestTenantWhenLate(t *testing.T) {
	tests := []struct {
		name string
		rate float64 // the queue's completions a second
		want int
	}{
		{"late endpoints: 3,000 waiting at 20/s", 20, 2*1500 - 2*64},
		{"overload: 3,000 waiting at 600/s", 600, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFairQueue(64, 10_000, 5*time.Second)
			q.now = func() time.Time { return time.Unix(0, 0) } // the rate decides, not the clock
			for range 1500 {
				q.push(td("big", "b1"), 0, false)
				q.push(td("big", "b2"), 0, false)
			}
			for range 10 {
				q.push(td("small", "s1"), 0, false)
			}
			q.mu.Lock()
			q.total.rate = tt.rate
			q.mu.Unlock()
			if got := len(q.evictStalled()); got != tt.want {
				t.Errorf("evictStalled took out %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("200 late subscriptions keep half the budget in all", func(t *testing.T) {
		q := newFairQueue(64, 10_000, 5*time.Second)
		q.now = func() time.Time { return time.Unix(0, 0) }
		for i := range 200 {
			for range 15 {
				q.push(td("big", fmt.Sprintf("b%d", i)), 0, false)
			}
		}
		q.mu.Lock()
		q.total.rate = 20
		q.mu.Unlock()
		// 2,048 / (2 × 200) = 5 each.
		if got, want := len(q.evictStalled()), 200*(15-5); got != want {
			t.Errorf("evictStalled took out %d, want %d", got, want)
		}
	})
}
