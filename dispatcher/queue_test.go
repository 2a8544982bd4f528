package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	q.done(tk("a", 0), time.Millisecond)
	if got, _ := q.next(); got.sub != "a" {
		t.Errorf("after a finished one, next = %q, want a", got.sub)
	}
}

func TestFairQueueRoomFollowsEndpointSpeed(t *testing.T) {
	tests := []struct {
		name   string
		took   time.Duration
		queued int
		want   int // waiting after done
	}{
		{"fast endpoint keeps a burst", 2 * time.Millisecond, 500, 500},
		{"slow endpoint keeps 5 s worth", time.Second, 500, 10},
		{"dead endpoint keeps its in-flight cap", 15 * time.Second, 500, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFairQueue(2, 1000, 5*time.Second)
			for i := range tt.queued + 1 {
				if !q.push(tk("a", i), 0, false) {
					t.Fatalf("push #%d refused before the endpoint's speed was known", i)
				}
			}
			first, _ := q.next()
			evicted := q.done(first, tt.took)
			q.mu.Lock()
			waiting := len(q.subs["a"].waiting)
			q.mu.Unlock()
			if waiting != tt.want || waiting+len(evicted) != tt.queued {
				t.Errorf("after one %v attempt: %d waiting, %d evicted; want %d waiting, none lost", tt.took, waiting, len(evicted), tt.want)
			}
			if len(evicted) > 0 && q.push(tk("a", -1), 0, false) {
				t.Error("push accepted past the room of a slow endpoint")
			}
		})
	}
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
	q.done(first, time.Millisecond)
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
	if !q.push(tk("a", 0), 0, false) || !q.push(tk("a", 1), 0, false) || !q.push(parked, 0, true) {
		t.Fatal("push refused")
	}
	first, _ := q.next()
	evicted := q.done(first, time.Minute) // room falls to the in-flight cap
	if len(evicted) != 0 && evicted[0] == parked {
		t.Errorf("a parked delivery was evicted")
	}
	for i := range 5 {
		if !q.push(&delivery{tenant: "t", sub: "a", attempt: i, parked: fakeMsg{}}, 0, true) {
			t.Fatalf("forced push #%d refused", i)
		}
	}
	left := q.close()
	if len(left) != 3-1-len(evicted)+5 {
		t.Errorf("close returned %d waiting deliveries, want %d", len(left), 3-1-len(evicted)+5)
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
		q.done(d, time.Millisecond)
	}
	<-done
}
