package main

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// TestStalledStackReportsItAndStopsWithinTheGrace: with every attempt
// hanging at a receiver that never answers and the NATS server killed
// mid-flight, /readyz reports the stall, and SIGTERM still ends webhookd:
// bounded by its shutdown grace, not by the attempts' 10-minute timeout,
// and cleanly (exit 0). One attempt is answered after NATS is gone, so
// the attempt log holds a record it cannot store: its writer gets part of
// what is left of the grace, not all of it, and what closes after it still
// closes. How long it took is logged; the test fails only far past the
// grace, where nothing but a wait the grace does not bound can take it.
func TestStalledStackReportsItAndStopsWithinTheGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server and webhookd as child processes")
	}
	t.Parallel()
	natsBin, bin := buildNATSServer(t), buildWebhookd(t)
	natsAddr := freeAddr(t)
	ns := startNATSServer(t, natsBin, natsAddr, t.TempDir())
	addr, token := freeAddr(t), "admin-secret"
	const grace = 4 * time.Second
	d := startDaemon(t, bin, t.TempDir(), addr, token, "WEBHOOKD_NATS_URL=nats://"+natsAddr,
		"WEBHOOKD_DELIVERY_TIMEOUT=10m", "WEBHOOKD_SHUTDOWN_GRACE="+grace.String(), "WEBHOOKD_STALL_AFTER=1s")
	base := "http://" + addr

	rc := testenv.NewReceiver()
	defer rc.Close() // after the release below: Close waits for the handlers
	release, first := make(chan struct{}), make(chan struct{})
	defer close(release)
	var answered atomic.Int32
	rc.Respond(func(int, *http.Request) int {
		if answered.Add(1) == 1 {
			<-first // answered once NATS is gone
			return http.StatusOK
		}
		<-release
		return http.StatusOK
	})
	key := subscribeOver(t, base, token, "stall", rc.URL())
	evts := make([]map[string]any, 50)
	for i := range evts {
		evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}}
	}
	if status, body := call(t, "POST", base+"/api/events/batch", key, map[string]any{"events": evts}); status != 202 {
		t.Fatalf("publish: %d %s", status, body)
	}
	if got := rc.WaitFor(1, 30*time.Second); len(got) == 0 {
		t.Fatal("no attempt reached the receiver")
	}

	ns.cmd.Process.Signal(syscall.SIGKILL)
	ns.cmd.Wait()
	var reported string
	if !poll.Within(60*time.Second, func() bool {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "nats connection") {
				reported = string(b)
			}
		}
		return reported != ""
	}) {
		t.Fatalf("/readyz never reported the stall; logs:\n%s", d.logs)
	}
	t.Logf("/readyz: %s", strings.TrimSpace(reported))
	close(first)
	poll.Until(t, 60*time.Second, "the attempt answered after NATS was gone counted as succeeded", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `webhooks_attempts_total{outcome="succeeded"} 1`)
	})

	const bound = grace + time.Minute // far below the attempts' timeout
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	err, ok := poll.ReceiveWithin(bound, exited)
	if !ok {
		d.cmd.Process.Signal(syscall.SIGQUIT)
		<-exited
		t.Fatalf("webhookd still running %v after SIGTERM with a %v grace; logs:\n%s", bound, grace, d.logs)
	}
	took := time.Since(start)
	if err != nil {
		t.Errorf("webhookd exited with %v after SIGTERM, want 0; logs:\n%s", err, d.logs)
	}
	t.Logf("webhookd stopped %v after SIGTERM (grace %v)", took.Round(10*time.Millisecond), grace)
}
