package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
)

// TestShutdownWithStorageLost: SIGTERM with deliveries in flight and the
// data directory removed at the same moment (a disk lost under the
// process): webhookd still exits, its indexes left unflushed (a minute
// bounds the wait, which only a hang exceeds).
func TestShutdownWithStorageLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs webhookd as a child process")
	}
	t.Parallel()
	bin := buildWebhookd(t)
	dataDir, token := filepath.Join(t.TempDir(), "data"), "admin-secret"
	var inFlight atomic.Int64
	release := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(rc.Close)
	t.Cleanup(func() { close(release) })
	d := startDaemon(t, bin, dataDir, freeAddr(t), token, "WEBHOOKD_SHUTDOWN_GRACE=3s")
	base := "http://" + d.addr
	key := subscribeOver(t, base, token, "lost-disk", rc.URL)
	var last string
	for range 20 {
		status, body := call(t, "POST", base+"/api/events", key, map[string]any{"type": "ticket.updated", "data": map[string]any{}})
		if status != http.StatusAccepted {
			t.Fatalf("publish: %d %s", status, body)
		}
		var e struct{ ID string }
		json.Unmarshal(body, &e)
		last = e.ID
	}
	// The indexes hold what they applied in memory, to be flushed at close.
	poll.Until(t, time.Minute, "the last event indexed", func() bool {
		status, _ := call(t, "GET", base+"/api/events/"+last, key, nil)
		return status == http.StatusOK
	})
	poll.Until(t, time.Minute, "deliveries in flight", func() bool { return inFlight.Load() > 0 })

	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	if _, ok := poll.ReceiveWithin(time.Minute, exited); !ok {
		d.cmd.Process.Kill()
		<-exited
		t.Fatalf("webhookd still running a minute after SIGTERM with its data directory gone; logs:\n%s", d.logs)
	}
	// The server's own shutdown returned by its deadline: webhookd's last
	// resort past the grace (it exits whatever holds the shutdown) did not
	// have to.
	if logs := d.logs.String(); strings.Contains(logs, "shutdown still running") {
		t.Errorf("webhookd exited through its last resort, not its shutdown's own bound; logs:\n%s", logs)
	}
}
