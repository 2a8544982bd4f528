package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// buildWebhookd compiles this command once for the crash tests.
func buildWebhookd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "webhookd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is one webhookd child process.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
}

func startDaemon(t *testing.T, bin, dataDir, addr, token string, env ...string) *daemon {
	t.Helper()
	d := &daemon{addr: addr, logs: &bytes.Buffer{}}
	d.cmd = exec.Command(bin)
	d.cmd.Env = append(os.Environ(),
		"WEBHOOKD_ADDR="+addr, "WEBHOOKD_DATA_DIR="+dataDir, "WEBHOOKD_ADMIN_TOKEN="+token,
		"WEBHOOKD_ALLOW_PRIVATE_DESTINATIONS=true", "WEBHOOKD_ALLOW_HTTP=true",
		"WEBHOOKD_RETRY_SCHEDULE=200ms,500ms,1s,2s", "WEBHOOKD_LOG_LEVEL=warn",
		"WEBHOOKD_DELIVERY_TIMEOUT=2s")
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	if !poll.Within(60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("webhookd not ready in 60 s; logs:\n%s", d.logs)
	}
	return d
}

// subscribeOver makes a tenant (with a high rate limit) over webhookd's
// API at base, subscribes url to its ticket events, and returns its key.
func subscribeOver(t *testing.T, base, token, name, url string) string {
	t.Helper()
	status, body := call(t, "POST", base+"/admin/tenants", token, map[string]any{"name": name, "rateLimit": 100000})
	if status != 201 {
		t.Fatalf("create tenant: %d %s", status, body)
	}
	var ten struct {
		APIKey struct{ Key string } `json:"apiKey"`
	}
	json.Unmarshal(body, &ten)
	if status, body = call(t, "POST", base+"/api/subscriptions", ten.APIKey.Key, map[string]any{"url": url, "eventTypes": []string{"ticket.*"}}); status != 201 {
		t.Fatalf("create subscription: %d %s", status, body)
	}
	return ten.APIKey.Key
}

func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestKilledAfter202LosesNoEvent kills webhookd with SIGKILL right after it
// answered 202 to event posts, restarts it on the same data directory, and
// checks that every accepted event is delivered.
func TestKilledAfter202LosesNoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs webhookd as a child process")
	}
	t.Parallel()
	bin := buildWebhookd(t)
	dataDir, token := t.TempDir(), "admin-secret"
	addr := freeAddr(t)
	d := startDaemon(t, bin, dataDir, addr, token)
	base := "http://" + addr

	rc := testenv.NewReceiver()
	defer rc.Close()
	// The receiver is slow enough that the kill lands with work in flight.
	rc.Respond(func(int, *http.Request) int { time.Sleep(2 * time.Millisecond); return 200 })
	key := subscribeOver(t, base, token, "crash", rc.URL())

	const batches, perBatch = 20, 100
	accepted := map[string]bool{}
	var mu sync.Mutex
	for b := range batches {
		evts := make([]map[string]any, perBatch)
		for i := range evts {
			evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": b*perBatch + i}}
		}
		status, body := call(t, "POST", base+"/api/events/batch", key, map[string]any{"events": evts})
		if status != 202 {
			t.Fatalf("batch %d: %d %s", b, status, body)
		}
		var out struct{ IDs []string }
		json.Unmarshal(body, &out)
		mu.Lock()
		for _, id := range out.IDs {
			accepted[id] = true
		}
		mu.Unlock()
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	before := rc.Count()

	d2 := startDaemon(t, bin, dataDir, addr, token)
	var seen map[string]int
	lost := 0
	if !poll.Within(2*time.Minute, func() bool {
		seen = map[string]int{}
		for _, r := range rc.Received() {
			seen[r.ID]++
		}
		lost = 0
		for id := range accepted {
			if seen[id] == 0 {
				lost++
			}
		}
		return lost == 0
	}) {
		var lines []string
		if resp, err := http.Get(base + "/metrics"); err == nil {
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(m), "\n") {
				if strings.HasPrefix(l, "webhooks_") {
					lines = append(lines, l)
				}
			}
		}
		t.Fatalf("%d of %d accepted events never delivered after restart\nmetrics:\n%s\nlogs:\n%s", lost, len(accepted), strings.Join(lines, "\n"), d2.logs)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d events accepted, %d delivered before the kill, all delivered after restart; %d duplicate deliveries (receivers dedupe on webhook-id)", len(accepted), before, dups)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--retry-schedule", "5s,nope"}, nil, "--retry-schedule"},
		{nil, map[string]string{"WEBHOOKD_ALLOW_HTTP": "maybe"}, "WEBHOOKD_ALLOW_HTTP"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--allow-destination-cidrs", "10.0.0.0/99"}, nil, "--allow-destination-cidrs"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--nats-dedupe-window", "20s"}, nil, "--nats-dedupe-window"},
		{[]string{"--gc-percent", "5"}, nil, "--gc-percent"},
		{[]string{"--nats-dedupe-window", "2m", "--dedupe-window", "1m"}, nil, "--nats-dedupe-window"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		getenv := func(k string) string { return tt.env[k] }
		err := run(t.Context(), tt.args, getenv, nil, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%v, %v) = %v, want an error naming %s", tt.args, tt.env, err, tt.want)
		}
	}
	var stderr bytes.Buffer
	_, err := parse(nil, func(string) string { return "" }, []string{"WEBHOOKD_NOPE=1"}, &stderr)
	if err != nil || !strings.Contains(stderr.String(), "WEBHOOKD_NOPE") {
		t.Errorf("unknown variable: err %v, stderr %q; want a warning naming it", err, stderr.String())
	}

}
