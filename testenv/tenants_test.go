package testenv_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/testenv"
)

// hangingHost accepts TCP connections and never answers on them, as a
// firewall or a stuck load balancer does; it counts the connections.
type hangingHost struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newHangingHost(t *testing.T) *hangingHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingHost{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

func (h *hangingHost) URL(path string) string { return "http://" + h.ln.Addr().String() + path }

func (h *hangingHost) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// TestNoisyTenantDoesNotDelayAnother: a tenant whose twelve endpoints on
// one host never answer, with thousands of deliveries for them, keeps
// neither the workers nor the sockets: another tenant's webhooks all
// arrive while every attempt to that host still hangs (the attempt
// timeout is a minute, longer than the wait), and the host never gets
// more connections than a new destination's limit. Before deliveries were
// scheduled by tenant and destination, the twelve endpoints took all 16
// workers for the whole minute.
func TestNoisyTenantDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Timeout: time.Minute, Dispatcher: dispatcher.Config{Workers: 16}})
	noisy, err := env.CreateTenant("noisy", 0)
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := env.CreateTenant("quiet", 0)
	if err != nil {
		t.Fatal(err)
	}
	host := newHangingHost(t)
	for i := range 12 {
		if _, err := env.Subscribe(noisy, host.URL("/hook/"+string(rune('a'+i))), "ticket.*"); err != nil {
			t.Fatal(err)
		}
	}
	fast := receiver(t)
	subscribe(t, env, quiet, fast, "ticket.*")

	publishBatches(t, env, noisy, 200) // 2,400 deliveries to the host that hangs
	const n = 20
	publishBatches(t, env, quiet, n)
	if got := len(fast.WaitFor(n, 30*time.Second)); got != n {
		t.Fatalf("the quiet tenant got %d of %d webhooks while the noisy tenant's host hung", got, n)
	}
	if got := host.accepted(); got > 8 {
		t.Errorf("the host that never answers got %d connections, want at most 8 (a new destination's limit)", got)
	}
	t.Logf("the host that never answers got %d connections for 2,400 deliveries", host.accepted())
}

// TestBacklogIsVisible: deliveries that wait for their first attempt (here
// behind a subscription's pace of one per 100 s) are listed as pending,
// counted in the subscription's backlog, and shown in their event's
// lookup, before anything is sent.
func TestBacklogIsVisible(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	r, err := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{
		"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "rateLimit": 0.01,
	})
	if err != nil || r.Status != 201 {
		t.Fatalf("create a paced subscription: %v %v", r, err)
	}
	var sub struct {
		ID      string
		Backlog *int
	}
	if err := r.JSON(&sub); err != nil {
		t.Fatal(err)
	}
	if sub.Backlog == nil || *sub.Backlog != 0 {
		t.Errorf("a new subscription's backlog = %v, want 0", sub.Backlog)
	}
	const n = 5
	ids := publishBatches(t, env, ten, n)

	// One goes at once (the pace's first token); the others wait.
	var pending []struct {
		ID, EventID, Status string
		Attempts            []any
	}
	untilCounted(t, "the waiting deliveries listed as pending", func() bool {
		r, err := env.Do("GET", "/api/subscriptions/"+sub.ID+"/deliveries?status=pending", ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			return false
		}
		var page struct {
			Data []struct {
				ID, EventID, Status string
				Attempts            []any
			}
		}
		if r.JSON(&page) != nil {
			return false
		}
		pending = page.Data
		return len(pending) >= n-1
	})
	for _, d := range pending {
		if d.Status != "pending" || len(d.Attempts) != 0 {
			t.Errorf("listed delivery %s: status %q with %d attempts, want pending with none", d.ID, d.Status, len(d.Attempts))
		}
	}
	r, err = env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("get the subscription: %v %v", r, err)
	}
	if err := r.JSON(&sub); err != nil {
		t.Fatal(err)
	}
	if sub.Backlog == nil || *sub.Backlog < n-1 {
		t.Errorf("backlog = %v, want at least %d", sub.Backlog, n-1)
	}
	last := ids[len(ids)-1]
	untilCounted(t, "the last event's lookup showing its delivery", func() bool {
		r, err := env.Do("GET", "/api/events/"+last, ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			return false
		}
		var ev struct {
			Deliveries []struct{ SubscriptionID, Status string }
		}
		return r.JSON(&ev) == nil && len(ev.Deliveries) == 1 && ev.Deliveries[0].SubscriptionID == sub.ID
	})
}
