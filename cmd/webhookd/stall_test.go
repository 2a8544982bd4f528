package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onestack/webhooks/testenv"
)

// TestStalledStackReportsItAndStopsWithinTheGrace: with every attempt
// hanging at a receiver that never answers and the NATS server killed
// mid-flight, /readyz reports the stall, and SIGTERM still ends webhookd
// within its shutdown grace.
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
		"WEBHOOKD_DELIVERY_TIMEOUT=60s", "WEBHOOKD_SHUTDOWN_GRACE="+grace.String(), "WEBHOOKD_STALL_AFTER=1s")
	base := "http://" + addr

	rc := testenv.NewReceiver()
	defer rc.Close() // after the release below: Close waits for the handlers
	release := make(chan struct{})
	defer close(release)
	rc.Respond(func(int, *http.Request) int { <-release; return http.StatusOK })
	key := subscribeOver(t, base, token, "stall", rc.URL())
	evts := make([]map[string]any, 50)
	for i := range evts {
		evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}}
	}
	if status, body := call(t, "POST", base+"/api/events/batch", key, map[string]any{"events": evts}); status != 202 {
		t.Fatalf("publish: %d %s", status, body)
	}
	if got := rc.WaitFor(1, 20*time.Second); len(got) == 0 {
		t.Fatal("no attempt reached the receiver")
	}

	ns.cmd.Process.Signal(syscall.SIGKILL)
	ns.cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	var reported string
	for reported == "" {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "nats connection") {
				reported = string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the stall; logs:\n%s", d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz: %s", strings.TrimSpace(reported))

	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(start)
		if err != nil {
			t.Errorf("webhookd exited with %v after SIGTERM, want 0; logs:\n%s", err, d.logs)
		}
		t.Logf("webhookd stopped %v after SIGTERM (grace %v)", took.Round(10*time.Millisecond), grace)
	case <-time.After(grace + 3*time.Second):
		d.cmd.Process.Signal(syscall.SIGQUIT)
		<-exited
		t.Fatalf("webhookd still running %v after SIGTERM with a %v grace; logs:\n%s", grace+3*time.Second, grace, d.logs)
	}
}
