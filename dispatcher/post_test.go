package dispatcher

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// received is one webhook as its receiver got it.
type received struct {
	header http.Header
	body   string
}

// postStack is a dispatcher with what an attempt's post uses (its
// client, metrics and run context; no fan-out, no log) over a real
// subscription store on embedded NATS, and a receiver in this process
// that records what it gets and answers with answer (204 when nil). New
// connections to the receiver are counted.
type postStack struct {
	d      *Dispatcher
	store  *subscriptions.Store
	tenant string
	url    string
	conns  *atomic.Int64
	got    *atomic.Int64
	// stop ends the dispatcher's run context, as a drain out of time does.
	stop context.CancelFunc

	mu   sync.Mutex
	seen []received
	keep bool
}

func newPostStack(tb testing.TB, keep bool, answer http.HandlerFunc) *postStack {
	tb.Helper()
	ps := &postStack{conns: new(atomic.Int64), got: new(atomic.Int64), keep: keep}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ps.got.Add(1)
		if ps.keep {
			ps.mu.Lock()
			ps.seen = append(ps.seen, received{header: r.Header.Clone(), body: string(b)})
			ps.mu.Unlock()
		}
		if answer != nil {
			answer(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ps.conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	ps.url = srv.URL + "/hook"
	_, js := natstest.Start(tb, natstest.Options{}).Connect(tb)
	ctx := context.Background()
	store, err := subscriptions.Open(ctx, js, subscriptions.Config{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	ten, _, _, err := store.CreateTenant(ctx, subscriptions.TenantInput{Name: "post"})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Egress: egress.Policy{AllowHTTP: true, AllowPrivate: true}, UserAgent: "OneStack-Webhooks/test"}.withDefaults()
	runCtx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	ps.d = &Dispatcher{cfg: cfg, client: NewClient(cfg.Egress), m: newMetrics(prometheus.NewRegistry()), runCtx: runCtx}
	ps.stop = cancel
	ps.store, ps.tenant = store, ten.ID
	return ps
}

// subscribe creates a subscription to the receiver with in's settings and
// returns it as the index holds it, which is what a worker posts with.
func (ps *postStack) subscribe(tb testing.TB, in subscriptions.CreateInput) *subscriptions.Subscription {
	tb.Helper()
	in.URL, in.EventTypes = ps.url, []string{"ticket.updated"}
	created, err := ps.store.CreateSubscription(context.Background(), ps.tenant, in)
	if err != nil {
		tb.Fatal(err)
	}
	sub, ok := ps.store.Index().Subscription(ps.tenant, created.ID)
	if !ok {
		tb.Fatal("subscription not in the index")
	}
	return sub
}

// delivery is a first attempt of a ticket.updated event with body to sub.
func (ps *postStack) delivery(sub *subscriptions.Subscription, body string) *delivery {
	id := events.NewID()
	ev := &event{tenant: ps.tenant, id: id, typ: "ticket.updated", body: []byte(body), trace: tracing.FromKey(ps.tenant + ":" + id)}
	return &delivery{id: "dlv_post", tenant: ps.tenant, sub: sub.ID, ev: ev, attempt: 1}
}

// TestPostSendsTheWebhook posts to subscriptions with different settings
// in turn, twice over, on one worker, whose scratch buffer each
// request's values are written into: each receiver gets exactly the
// headers of its own subscription (none left from another), a signature
// its secret verifies, and the body.
func TestPostSendsTheWebhook(t *testing.T) {
	t.Parallel()
	ps := newPostStack(t, true, nil)
	secret := "whsec_" + strings.Repeat("MfKQ9r8GKYqrTwjUPD8ILPZI", 2)
	off := false
	subs := []struct {
		name   string
		in     subscriptions.CreateInput
		custom map[string]string
		tp     bool
	}{
		{"custom headers", subscriptions.CreateInput{Secret: &secret, Headers: map[string]string{"x-team": "blue", "X-Env": "test"}}, map[string]string{"X-Team": "blue", "X-Env": "test"}, true},
		{"no traceparent", subscriptions.CreateInput{Secret: &secret, SendTraceparent: &off}, nil, false},
		{"defaults", subscriptions.CreateInput{Secret: &secret}, nil, true},
	}
	key, err := signature.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	verifier := signature.Verifier{Secrets: []signature.Secret{key}}
	wk := ps.d.newWorker()
	defer wk.close()
	for round := range 2 {
		for _, s := range subs {
			sub := ps.subscribe(t, s.in)
			body := `{"round":` + strconv.Itoa(round) + `,"sub":"` + s.name + `"}`
			dl := ps.delivery(sub, body)
			now := time.Now()
			sc := tracing.Child(dl.ev.trace)
			if r := ps.d.post(wk, sub, dl, now, sc); !r.ok() {
				t.Fatalf("%s: post = %+v, want a success", s.name, r)
			}
			ps.mu.Lock()
			got := ps.seen[len(ps.seen)-1]
			ps.mu.Unlock()
			want := http.Header{
				"Content-Type":      {"application/json"},
				"User-Agent":        {"OneStack-Webhooks/test"},
				"Content-Length":    {strconv.Itoa(len(body))},
				"Webhook-Id":        {dl.ev.id},
				"Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
				"Webhook-Signature": {signature.Sign(key, dl.ev.id, now, []byte(body))},
			}
			if s.tp {
				want["Traceparent"] = []string{tracing.Format(sc)}
			}
			for k, v := range s.custom {
				want[k] = []string{v}
			}
			if diff := cmp.Diff(want, got.header); diff != "" {
				t.Errorf("round %d, %s: headers received (-want +got):\n%s", round, s.name, diff)
			}
			if got.body != body {
				t.Errorf("round %d, %s: body received %q, want %q", round, s.name, got.body, body)
			}
			if err := verifier.VerifyHeaders(got.header.Get, []byte(got.body)); err != nil {
				t.Errorf("round %d, %s: Verify = %v, want nil", round, s.name, err)
			}
		}
	}
}

// TestPostDrainsLongAnswers: an answer longer than the excerpt kept is
// read to its end (within drainLimit), so the next webhook goes on the
// same connection; the excerpt is the answer's start.
func TestPostDrainsLongAnswers(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789", 1000) // 10,000 bytes
	ps := newPostStack(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, long)
	})
	sub := ps.subscribe(t, subscriptions.CreateInput{})
	wk := ps.d.newWorker()
	defer wk.close()
	for i := range 3 {
		r := ps.d.post(wk, sub, ps.delivery(sub, `{}`), time.Now(), tracing.Fresh())
		if !r.ok() || r.excerpt != long[:len(excerptBuf{})] {
			t.Fatalf("post %d = status %d, error %q, excerpt of %d bytes; want 200 and the answer's first %d bytes", i, r.status, r.err, len(r.excerpt), len(excerptBuf{}))
		}
	}
	if n := ps.conns.Load(); n != 1 {
		t.Errorf("receiver saw %d connections for 3 webhooks, want 1", n)
	}
}

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestPostWritesOnce: a webhook whose request fits the transport's write
// buffer leaves in one write, headers and body together (the transport
// flushes the headers apart for a body it does not know to be in
// memory: one more syscall and packet per webhook).
func TestPostWritesOnce(t *testing.T) {
	t.Parallel()
	ps := newPostStack(t, false, nil)
	var writes atomic.Int64
	tr := newTransport(ps.d.cfg.Egress)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	}
	ps.d.client = clientOf(tr)
	sub := ps.subscribe(t, subscriptions.CreateInput{})
	const webhooks = 5
	wk := ps.d.newWorker()
	defer wk.close()
	for i := range webhooks {
		if r := ps.d.post(wk, sub, ps.delivery(sub, `{"ticketId":"T-1","status":"open"}`), time.Now(), tracing.Fresh()); !r.ok() {
			t.Fatalf("post %d = %+v, want a success", i, r)
		}
	}
	if n := writes.Load(); n != webhooks {
		t.Errorf("%d webhooks took %d writes, want %d", webhooks, n, webhooks)
	}
}

// TestPostTimeoutAndCut: a worker's attempts to an endpoint that never
// answers end at the timeout, each (the context a timeout ended is not
// reused: the attempt after it succeeds, and the next timeout fires
// again), as "timeout", the destination unreachable; an attempt in flight
// when the dispatcher's run ends is cut.
func TestPostTimeoutAndCut(t *testing.T) {
	t.Parallel()
	ps := newPostStack(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hang") != "" {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ps.d.cfg.Timeout = 100 * time.Millisecond
	hang := ps.subscribe(t, subscriptions.CreateInput{Headers: map[string]string{"X-Hang": "1"}})
	fast := ps.subscribe(t, subscriptions.CreateInput{})
	wk := ps.d.newWorker()
	defer wk.close()
	for i := range 2 {
		r := ps.d.post(wk, hang, ps.delivery(hang, `{}`), time.Now(), tracing.Fresh())
		if r.err != "timeout" || !r.unreachable || r.status != 0 || r.cut {
			t.Errorf("post %d to a hanging endpoint = %+v, want a timeout, unreachable", i, r)
		}
		if r := ps.d.post(wk, fast, ps.delivery(fast, `{}`), time.Now(), tracing.Fresh()); !r.ok() {
			t.Errorf("post %d after a timeout = %+v, want a success", i, r)
		}
	}
	ps.d.cfg.Timeout = time.Minute
	go func() {
		// Ends the run once the hanging request is in flight.
		poll.Within(time.Minute, func() bool { return ps.got.Load() >= 5 })
		ps.stop()
	}()
	if r := ps.d.post(wk, hang, ps.delivery(hang, `{}`), time.Now(), tracing.Fresh()); !r.cut {
		t.Errorf("post cut by the run's end = %+v, want cut", r)
	}
}
