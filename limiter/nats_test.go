package limiter

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

func startNATS(t testing.TB, dir string, port int) *natstest.Server {
	t.Helper()
	return natstest.Start(t, natstest.Options{Dir: dir, Port: port})
}

// natsLimiter connects a limiter with clock to url. Tests hold the clock
// still, so their counts never straddle a window reset.
func natsLimiter(t testing.TB, url string, clock func() time.Time) (*Limiter, *NATS) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, err := NewNATS(context.Background(), nc, js, 1, 0, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return New(s, clock), s
}

func TestNATSThreeInstancesShareOneBudget(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, t.TempDir(), -1)
	t.Cleanup(srv.Shutdown)
	var ls []*Limiter
	clock := fixed(time.Now()) // one instant for all three instances
	for range 3 {
		l, s := natsLimiter(t, srv.ClientURL(), clock)
		// 1,000 takes at once on a loaded machine can wait past the 500 ms
		// a request gets before it is counted locally (fail open, and
		// over the budget): wait as long as only a hang would, so that
		// the shared count is what is tested.
		s.timeout = time.Minute
		ls = append(ls, l)
	}
	for round := range 3 {
		tenant := "ten_shared" + strconv.Itoa(round)
		if got := admitConcurrently(t, ls, tenant, 1000, 100); got != 100 {
			t.Errorf("round %d: %d of 1000 concurrent takes over 3 instances allowed, want 100", round, got)
		}
	}
}

func TestNATSDownFallsBackAndReturns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startNATS(t, dir, -1)
	url := srv.ClientURL()
	port := srv.Addr().(*net.TCPAddr).Port
	l, store := natsLimiter(t, url, fixed(time.Now()))
	ctx := context.Background()
	for range 10 {
		if d, err := l.Take(ctx, "ten_f", 100); err != nil || !d.Allowed {
			t.Fatalf("Take with NATS up = %+v, %v", d, err)
		}
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	// Requests go on while NATS is down: each is allowed, counted locally
	// (a budget of its own, as polling makes hundreds of them), until the
	// store says it counts locally.
	poll.Until(t, 30*time.Second, "counting locally after NATS went down", func() bool {
		d, err := l.Take(ctx, "ten_f", 100_000)
		if err != nil || !d.Allowed {
			t.Fatalf("Take with NATS down = %+v, %v; want allowed by the local fallback", d, err)
		}
		return store.Degraded()
	})
	var d Decision
	var err error
	// Restart on the same port and storage: the shared count is back.
	srv2 := startNATS(t, dir, port)
	t.Cleanup(srv2.Shutdown)
	poll.Until(t, 30*time.Second, "counting in NATS again after it came back", func() bool {
		d, err = l.Take(ctx, "ten_f", 100)
		return !store.Degraded()
	})
	if err != nil || d.Remaining > 89 {
		t.Errorf("Take after NATS is back = %+v, %v; want the shared count (at most 89 left after 11 takes)", d, err)
	}
}
