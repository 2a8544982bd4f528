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

func TestCounterValue(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  int64
		ok    bool
	}{
		{`{"stream":"RATELIMITS","seq":7,"val":"12"}`, 12, true},
		{`{"stream":"RATELIMITS","seq":8,"val":"-1"}`, -1, true},
		{`{"stream":"RATELIMITS","domain":"hub","seq":9,"val":"0"}`, 0, true},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"},"val":"1"}`, 0, false},
		{`{"stream":"RATELIMITS","seq":7}`, 0, false},
		{`{"stream":"RATELIMITS","seq":7,"val":"x"}`, 0, false},
		{`{"stream":"RATELIMITS","seq":7,"val":"99999999999999999999"}`, 0, false},
		{`{"stream":"RATELIMITS","val":"3","seq":7}`, 0, false},
		{`{"val":"3"`, 0, false},
		{``, 0, false},
	} {
		got, ok := counterValue([]byte(tc.reply))
		if got != tc.want || ok != tc.ok {
			t.Errorf("counterValue(%s) = %d, %v, want %d, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
}

// TestCounterValueReadsTheServersAnswer: the server's own answers to
// increments are read without the JSON decoder, so a change of their form
// shows here rather than as a slower path.
func TestCounterValueReadsTheServersAnswer(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, t.TempDir(), -1)
	_, s := natsLimiter(t, srv.ClientURL(), nil)
	for i, delta := range []string{"3", "-1", "40"} {
		reply, err := s.nc.RequestMsg(&nats.Msg{Subject: subjectPrefix + "ten_reply.1", Header: nats.Header{"Nats-Incr": {delta}}}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := counterValue(reply.Data)
		if want := []int64{3, 2, 42}[i]; !ok || got != want {
			t.Errorf("counterValue(%s) = %d, %v, want %d, true", reply.Data, got, ok, want)
		}
	}
}
