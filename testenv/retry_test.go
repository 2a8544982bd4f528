package testenv_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// A manual retry asked for while the delivery's last scheduled attempt is
// in flight (its outcome not yet logged) reserves the attempt number that
// attempt has. It must still make exactly one more attempt, whose outcome
// becomes the delivery's status. The tests hold the receiver's answers to
// set the order in which things are read and logged.

// TestManualRetryLoggedAfterTheScheduledAttempt: the manual attempt is
// read while the scheduled one is in flight, and its outcome logged after
// the scheduled one's, under the same number: it was once dropped from the
// history as a repeat, the delivery left failed.
func TestManualRetryLoggedAfterTheScheduledAttempt(t *testing.T) {
	t.Parallel()
	env, ten, rc, gates := retryStack(t, 0)
	id := heldSecondAttempt(t, env, ten, rc, gates)
	retryByHand(t, env, ten, id)
	gates.wait(t, 3) // the manual attempt, read at once: the lane has room
	gates.release(2)
	poll.Until(t, 30*time.Second, "the scheduled attempt's outcome logged", func() bool {
		d := getDelivery(t, env, ten, id)
		return d.Status == "failed" && len(d.Attempts) == 2
	})
	gates.release(3)
	wantRetried(t, env, ten, rc, id, 3)
}

// TestManualRetryReadAfterTheScheduledAttemptIsLogged: the manual
// attempt's record is read only once the attempt log has the scheduled
// attempt under the number the retry reserved: it was once taken as made
// already and dropped, the delivery left failed and no attempt made.
func TestManualRetryReadAfterTheScheduledAttemptIsLogged(t *testing.T) {
	t.Parallel()
	// One attempt in flight per subscription: the parked records (the
	// scheduled attempt, then a test event, then the retry) are read one
	// after another.
	env, ten, rc, gates := retryStack(t, 1)
	id := heldSecondAttempt(t, env, ten, rc, gates)
	// A test event parked behind the scheduled attempt, and the retry
	// behind it: the retry is read after the test event is answered.
	if r, err := env.Do("POST", "/api/subscriptions/"+subOf(t, id)+"/test", ten.APIKey, nil); err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("test event = %v %v, want 202", r, err)
	}
	retryByHand(t, env, ten, id)
	gates.release(2)
	gates.wait(t, 3)
	if got := rc.Received()[2]; !bytes.Contains(got.Body, []byte(`"webhook.test"`)) {
		t.Fatalf("third request = %s, want the test event", got.Body)
	}
	poll.Until(t, 30*time.Second, "the scheduled attempt's outcome logged", func() bool {
		d := getDelivery(t, env, ten, id)
		return d.Status == "failed" && len(d.Attempts) == 2
	})
	gates.release(3)
	wantRetried(t, env, ten, rc, id, 4)
}

// gates hold the receiver's answers: the nth request waits until
// release(n), when a gate is set for it.
type gates struct {
	mu      sync.Mutex
	arrived map[int]chan struct{}
	answer  map[int]chan struct{}
}

func (g *gates) chans(n int) (arrived, answer chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.arrived[n] == nil {
		g.arrived[n], g.answer[n] = make(chan struct{}), make(chan struct{})
	}
	return g.arrived[n], g.answer[n]
}

func (g *gates) wait(t *testing.T, n int) {
	t.Helper()
	arrived, _ := g.chans(n)
	poll.Receive(t, 30*time.Second, fmt.Sprintf("request %d", n), arrived)
}

func (g *gates) release(n int) {
	_, answer := g.chans(n)
	select {
	case <-answer:
	default:
		close(answer)
	}
}

// retryStack starts a stack with two scheduled attempts, perSub attempts
// in flight per subscription (zero: the default) and a timeout no held
// answer comes near, a tenant that may poll freely, and a receiver that
// answers 500 to the first two requests and 200 after, holding the second
// and third until released.
func retryStack(t *testing.T, perSub int) (*testenv.Env, testenv.Tenant, *testenv.Receiver, *gates) {
	env := testenv.Start(t, testenv.Options{
		Schedule:   []time.Duration{100 * time.Millisecond},
		Timeout:    time.Minute,
		Dispatcher: dispatcher.Config{PerSubscription: perSub},
	})
	ten, err := env.CreateTenant("acme", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	g := &gates{arrived: map[int]chan struct{}{}, answer: map[int]chan struct{}{}}
	rc := receiver(t)
	rc.Respond(func(n int, _ *http.Request) int {
		if n == 2 || n == 3 {
			arrived, answer := g.chans(n)
			close(arrived)
			<-answer
		}
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	t.Cleanup(func() { g.release(2); g.release(3) })
	return env, ten, rc, g
}

// heldSecondAttempt publishes an event to a new subscription and returns
// its delivery once the second (last scheduled) attempt is in flight.
func heldSecondAttempt(t *testing.T, env *testenv.Env, ten testenv.Tenant, rc *testenv.Receiver, g *gates) string {
	t.Helper()
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	g.wait(t, 2)
	return pollDeliveries(t, env, ten, sub.ID, "", func(d []deliveryJSON) bool { return len(d) == 1 })[0].ID
}

func retryByHand(t *testing.T, env *testenv.Env, ten testenv.Tenant, id string) {
	t.Helper()
	if r, err := env.Do("POST", "/api/deliveries/"+id+"/retry", ten.APIKey, nil); err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("retry = %v %v, want 202", r, err)
	}
}

func getDelivery(t *testing.T, env *testenv.Env, ten testenv.Tenant, id string) deliveryJSON {
	t.Helper()
	var d deliveryJSON
	r, err := env.Do("GET", "/api/deliveries/"+id, ten.APIKey, nil)
	if err != nil || r.Status != http.StatusOK || r.JSON(&d) != nil {
		t.Fatalf("GET delivery = %v %v", r, err)
	}
	return d
}

func subOf(t *testing.T, delivery string) string {
	t.Helper()
	sub, ok := dispatcher.SubscriptionOf(delivery)
	if !ok {
		t.Fatalf("SubscriptionOf(%q) failed", delivery)
	}
	return sub
}

// wantRetried checks the delivery ends succeeded, by a third attempt (the
// manual one) after two failed ones, and the receiver got requests in all.
func wantRetried(t *testing.T, env *testenv.Env, ten testenv.Tenant, rc *testenv.Receiver, id string, requests int) {
	t.Helper()
	var d deliveryJSON
	if !poll.Within(30*time.Second, func() bool { d = getDelivery(t, env, ten, id); return d.Status == "succeeded" }) {
		t.Fatalf("delivery after a manual retry = %s with %d attempts (%d requests received), want succeeded: the manual attempt's outcome",
			d.Status, len(d.Attempts), rc.Count())
	}
	var codes []int
	for _, a := range d.Attempts {
		if a.StatusCode != nil {
			codes = append(codes, *a.StatusCode)
		}
	}
	if len(codes) != 3 || codes[0] != 500 || codes[1] != 500 || codes[2] != 200 || d.NextAttemptAt != nil {
		t.Errorf("attempts logged = %v, next attempt %v; want [500 500 200] and none", codes, d.NextAttemptAt)
	}
	if n := rc.Count(); n != requests {
		t.Errorf("receiver got %d requests, want %d", n, requests)
	}
}
