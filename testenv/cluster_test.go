package testenv_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// startReplicas runs a 3-node JetStream cluster in-process and three
// webhookd stacks on it, every stream and bucket at three replicas.
func startReplicas(t *testing.T, o testenv.Options) (*natstest.Cluster, []*testenv.Env) {
	t.Helper()
	if testing.Short() {
		t.Skip("a 3-node NATS cluster and three stacks")
	}
	c := natstest.StartCluster(t, 3)
	o.NATSURL = c.URLs()
	edit := o.Server
	o.Server = func(cfg *server.Config) {
		cfg.Replicas = 3
		if edit != nil {
			edit(cfg)
		}
	}
	var envs []*testenv.Env
	for range 3 {
		envs = append(envs, testenv.Start(t, o))
	}
	return c, envs
}

// TestClusterReadYourWritesAcrossReplicas: what one replica creates or
// changes, the others serve on their next request: a new tenant's key, a
// new subscription, a changed one; a revoked key and a deleted
// subscription are refused everywhere, a revoked key once the KV watch
// reaches the replica. How long that took at worst is logged (the figure
// is the README's); the test waits for it as long as only a watch that
// stopped would take.
func TestClusterReadYourWritesAcrossReplicas(t *testing.T) {
	t.Parallel()
	_, envs := startReplicas(t, testenv.Options{})
	var slowest time.Duration
	for i := range 20 {
		a, b := envs[i%3], envs[(i+1)%3]
		ten, err := a.CreateTenant("t", 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := b.Do("GET", "/api/subscriptions", ten.APIKey, nil); r.Status != http.StatusOK {
			t.Fatalf("round %d: a key made on one replica = %d %s on another, want 200", i, r.Status, r.Body)
		}
		sub, err := a.Subscribe(ten, "https://example.com/h", "ticket.*")
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := b.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); r.Status != http.StatusOK {
			t.Fatalf("round %d: a subscription made on one replica = %d on another, want 200", i, r.Status)
		}
		if r, _ := a.Do("PATCH", "/api/subscriptions/"+sub.ID, ten.APIKey, map[string]any{"description": "changed"}); r.Status != http.StatusOK {
			t.Fatalf("patch = %d %s", r.Status, r.Body)
		}
		if r, _ := b.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); !strings.Contains(string(r.Body), `"description":"changed"`) {
			t.Fatalf("round %d: a change made on one replica reads %s on another", i, r.Body)
		}
		if r, _ := a.Do("DELETE", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete = %d", r.Status)
		}
		if r, _ := b.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); r.Status != http.StatusNotFound {
			t.Fatalf("round %d: a subscription deleted on one replica = %d on another, want 404", i, r.Status)
		}
		if r, _ := a.Do("DELETE", "/admin/tenants/"+ten.ID+"/keys/"+ten.KeyID, a.AdminToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("revoke = %d %s", r.Status, r.Body)
		}
		revoked := time.Now()
		poll.Until(t, 30*time.Second, fmt.Sprintf("round %d: a key revoked on one replica refused on another", i), func() bool {
			r, _ := b.Do("GET", "/api/subscriptions", ten.APIKey, nil)
			return r.Status == http.StatusUnauthorized
		})
		slowest = max(slowest, time.Since(revoked))
	}
	t.Logf("a revoked key was refused on another replica within %v at worst (20 rounds)", slowest)
}

// TestClusterLosingTheEventsLeaderLosesNothing publishes steadily through
// all three replicas while the NATS node that leads the events stream is
// shut down: no event answered 202 is lost, those answered 503 carry their
// ids and, published again with them, are delivered once, and deliveries
// resume. The longest pause in deliveries is logged, as a figure to
// report; the test fails it only where deliveries waited for a timeout
// rather than for a slow machine.
func TestClusterLosingTheEventsLeaderLosesNothing(t *testing.T) {
	t.Parallel()
	c, envs := startReplicas(t, testenv.Options{})
	ten, err := envs[0].CreateTenant("steady", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	subscribe(t, envs[0], ten, rc, "ticket.*")
	matchedEverywhere(t, ten, "ticket.updated", 1, envs...)

	var (
		mu       sync.Mutex
		accepted []string
		retry    []string // answered 503: their ids to publish again
		live     = []*testenv.Env{envs[0], envs[1], envs[2]}
	)
	publishOnce := func(env *testenv.Env, ids []string) (int, []string) {
		evts := make([]map[string]any, len(ids))
		for i, id := range ids {
			evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}}
			if id != "" {
				evts[i]["id"] = id
			}
		}
		r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts})
		if err != nil {
			return 0, nil
		}
		var out struct {
			IDs     []string
			Details struct{ IDs []string }
		}
		r.JSON(&out)
		if r.Status == http.StatusServiceUnavailable {
			return r.Status, out.Details.IDs
		}
		return r.Status, out.IDs
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			status, ids := publishOnce(live[n%len(live)], make([]string, 10))
			mu.Lock()
			switch status {
			case http.StatusAccepted:
				accepted = append(accepted, ids...)
			case http.StatusServiceUnavailable:
				retry = append(retry, ids...)
			}
			mu.Unlock()
		}
	})
	poll.Until(t, 30*time.Second, "a steady flow before the loss", func() bool { return rc.Count() >= 300 })

	_, js := envs[0].JetStream()
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("events stream cluster info = %+v, %v; want a leader and two replicas", info.Cluster, err)
	}
	leader := c.ByName(info.Cluster.Leader)
	receivedBefore := rc.Count()
	mu.Lock()
	acceptedBefore := len(accepted)
	mu.Unlock()
	lostAt := time.Now()
	leader.Shutdown()
	// Publishing goes on until the new leader has taken some: the flow
	// spans the loss and the election however long they take here.
	poll.Until(t, 60*time.Second, "a publish accepted after the events leader was lost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= acceptedBefore+100
	})
	close(stop)
	wg.Wait()

	// Publish again what was answered 503, with its ids, until taken.
	mu.Lock()
	pending := retry
	mu.Unlock()
	status := 0
	if !poll.Within(60*time.Second, func() bool {
		if len(pending) == 0 {
			return true
		}
		batch := pending[:min(10, len(pending))]
		var ids []string
		if status, ids = publishOnce(envs[1], batch); status == http.StatusAccepted {
			accepted = append(accepted, ids...)
			pending = pending[len(batch):]
		}
		return false
	}) {
		t.Fatalf("publishing the 503'd ids again still answers %d after 60 s", status)
	}

	var seen map[string]int
	var missing []string
	if !poll.Within(2*time.Minute, func() bool {
		seen = map[string]int{}
		for _, r := range rc.Received() {
			seen[r.ID]++
		}
		missing = slices.DeleteFunc(slices.Clone(accepted), func(id string) bool { return seen[id] > 0 })
		return len(missing) == 0
	}) {
		t.Fatalf("%d of %d accepted events never delivered after losing the events leader", len(missing), len(accepted))
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	var gap time.Duration
	prev := lostAt
	for _, r := range rc.Received()[receivedBefore:] {
		gap = max(gap, r.At.Sub(prev))
		prev = r.At
	}
	t.Logf("leader %s lost: %d events accepted, %d answered 503 and published again, 0 lost, %d duplicate deliveries; longest gap in deliveries after the loss %v",
		leader.Name(), len(accepted), len(retry), dups, gap.Round(time.Millisecond))
	// The gap is the election, the fan-out's noticing that its pull went
	// with the old leader, any publish waiting out its acknowledgement
	// (5 s a try, 10 s in all, then 503), and events in transit to the
	// dead pull, sent again after the fan-out's 10 s ack wait: under a
	// second to about 10 s here, more on a loaded machine. The figure is
	// the benchmark's and the README's; the test fails only where nothing
	// but a hang would take it.
	if gap > time.Minute {
		t.Errorf("deliveries stopped for %v after the events leader was lost, want them to resume (bound: a minute)", gap)
	}
}

// TestClusterStoppingAReplicaHandsOverPaceAndFIFO: a FIFO subscription and
// a paced one are delivered by whichever replica owns their lanes; that
// replica is stopped midway, another takes the lanes over, and the FIFO
// order and the pace hold across the handover, with nothing lost.
func TestClusterStoppingAReplicaHandsOverPaceAndFIFO(t *testing.T) {
	t.Parallel()
	_, envs := startReplicas(t, testenv.Options{})
	ten, err := envs[0].CreateTenant("owned", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	fifo, paced := receiver(t), receiver(t)
	const pace = 10.0
	for _, s := range []map[string]any{
		{"url": fifo.URL(), "eventTypes": []string{"ticket.*"}, "ordering": "fifo"},
		{"url": paced.URL(), "eventTypes": []string{"ticket.*"}, "rateLimit": pace},
	} {
		if r, _ := envs[0].Do("POST", "/api/subscriptions", ten.APIKey, s); r.Status != http.StatusCreated {
			t.Fatalf("create subscription = %d %s", r.Status, r.Body)
		}
	}
	matchedEverywhere(t, ten, "ticket.updated", 2, envs...)
	const n = 40
	ids := publishBatches(t, envs[0], ten, n)

	// Stop the replica that delivers, once some have arrived.
	fifo.WaitFor(5, 30*time.Second)
	owner := -1
	for i, env := range envs {
		if metric(t, env, `webhooks_attempts_total{outcome="succeeded"}`) > 0 {
			owner = i
			break
		}
	}
	if owner < 0 {
		t.Fatal("no replica counts the deliveries made")
	}
	envs[owner].Close()

	// A handover repeats deliveries (at least once): wait for the n
	// events, not for n requests.
	gotFIFO := waitDistinct(fifo, n, 60*time.Second)
	gotPaced := waitDistinct(paced, n, 60*time.Second)
	first := map[string]int{}
	var order []string
	for _, r := range gotFIFO {
		if _, ok := first[r.ID]; !ok {
			first[r.ID] = len(order)
			order = append(order, r.ID)
		}
	}
	if !slices.Equal(order, ids) {
		t.Errorf("FIFO receiver got %d distinct events in an order other than published", len(order))
	}
	distinct := map[string]bool{}
	for _, r := range gotPaced {
		distinct[r.ID] = true
	}
	if len(distinct) != n {
		t.Errorf("paced receiver got %d distinct events of %d", len(distinct), n)
	}
	// At 10 a second, n deliveries span at least (n-1)/10 s: a lower bound
	// a slow machine only makes easier to meet.
	if span := gotPaced[len(gotPaced)-1].At.Sub(gotPaced[0].At); span < time.Duration(float64(n-1)/pace*float64(time.Second))*9/10 {
		t.Errorf("%d paced deliveries within %v across a handover, want the pace of %v/s kept", len(gotPaced), span, pace)
	}
	t.Logf("replica %d stopped midway; FIFO order kept over %d deliveries (%d repeated), pace kept over %d", owner, len(gotFIFO), len(gotFIFO)-len(order), len(gotPaced))
}
