package testenv_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/limiter"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// TestStoreRefusesEventsNearItsLimit: with an events stream of 256 KiB,
// batches are accepted until the stream holds more than its high-water
// mark, then refused 503 UNAVAILABLE with Retry-After in the error shape,
// before JetStream's own limit is met; every event accepted is delivered,
// subscriptions and keys are still created, and /readyz and the metrics
// name the stream.
func TestStoreRefusesEventsNearItsLimit(t *testing.T) {
	const limit = 256 << 10
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) {
		// Read the stream's bytes at every publish, so batches smaller than
		// the room between the mark and the limit never pass the limit.
		c.Storage = server.StorageConfig{MaxStore: 64 << 20, EventsMaxBytes: limit, HighWater: 0.75, ReadEvery: time.Nanosecond}
	}})
	ten, err := env.CreateTenant("store", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := testenv.NewReceiver()
	defer rc.Close()
	if _, err := env.Subscribe(ten, rc.URL(), "ticket.updated"); err != nil {
		t.Fatal(err)
	}

	pad := strings.Repeat("x", 700)
	var accepted []string
	var refused *testenv.Response
	for i := 0; i < 100 && refused == nil; i++ { // about 20 KiB a batch: refused within 13
		evts := make([]map[string]any, 20)
		for j := range evts {
			evts[j] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i*20 + j, "pad": pad}}
		}
		r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts})
		if err != nil {
			t.Fatal(err)
		}
		switch r.Status {
		case http.StatusAccepted:
			var out struct {
				IDs []string `json:"ids"`
			}
			if err := r.JSON(&out); err != nil {
				t.Fatal(err)
			}
			accepted = append(accepted, out.IDs...)
		case http.StatusServiceUnavailable:
			refused = r
		default:
			t.Fatalf("batch %d = %d %s, want 202 or 503", i, r.Status, r.Body)
		}
	}
	if refused == nil {
		t.Fatalf("%d events accepted, none refused", len(accepted))
	}
	single, err := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": map[string]any{"n": -1}})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*testenv.Response{"batch": refused, "single": single} {
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d %s, want 503", name, r.Status, r.Body)
			continue
		}
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q, want seconds", name, r.Header.Get("Retry-After"))
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("%s: %s: %v", name, r.Body, err)
		}
		msg, _ := body["error"].(string)
		if diff := cmp.Diff(map[string]any{"error": msg, "code": "UNAVAILABLE"}, body); diff != "" {
			t.Errorf("%s refusal (-want +got):\n%s", name, diff)
		}
		if !strings.Contains(msg, "near its byte limit") {
			t.Errorf("%s: error %q, want it to say the event store is near its byte limit", name, msg)
		}
	}

	// What is accepted is delivered, each event once at least: the
	// accepted events are waited for, not as many webhooks, since a
	// delivery repeated (at least once) would count in their place.
	var lost []string
	poll.Within(60*time.Second, func() bool {
		delivered := map[string]bool{}
		for _, w := range rc.Received() {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(w.Body, &ev); err != nil {
				t.Fatalf("webhook body %s: %v", w.Body, err)
			}
			delivered[ev.ID] = true
		}
		lost = lost[:0]
		for _, id := range accepted {
			if !delivered[id] {
				lost = append(lost, id)
			}
		}
		return len(lost) == 0
	})
	if len(lost) > 0 {
		t.Errorf("%d of %d accepted events not delivered, first %s", len(lost), len(accepted), lost[0])
	}

	// The rest of the store is still written.
	if _, err := env.Subscribe(ten, rc.URL()+"/second", "ticket.updated"); err != nil {
		t.Errorf("subscribe while ingest refuses: %v", err)
	}
	if r, err := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil); err != nil || r.Status != http.StatusCreated {
		t.Errorf("create key while ingest refuses = %v %v, want 201", r, err)
	}

	r, err := env.Do("GET", "/readyz", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Status    string   `json:"status"`
		NearLimit []string `json:"nearLimit"`
	}
	if err := r.JSON(&ready); err != nil || r.Status != http.StatusOK || len(ready.NearLimit) != 1 || !strings.HasPrefix(ready.NearLimit[0], "stream EVENTS near its byte limit") {
		t.Errorf("/readyz = %d %s, want 200 naming stream EVENTS near its byte limit", r.Status, r.Body)
	}
	r, err = env.Do("GET", "/metrics", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	page := string(r.Body)
	if want := `webhooks_stream_max_bytes{stream="EVENTS"} 262144`; !strings.Contains(page, want) {
		t.Errorf("metrics lack %s", want)
	}
	if !strings.Contains(page, `webhooks_stream_bytes{stream="EVENTS"} `) || !strings.Contains(page, `webhooks_stream_max_bytes{stream="KV_idempotency"}`) {
		t.Errorf("metrics lack the bytes of EVENTS or a bucket's limit")
	}
}

// TestRateLimitCountersBoundedSmall: with a store of 10 GiB, the rate-limit
// counter stream gets 16 MiB, not its 1 % share (100 MiB), so JetStream
// gives it blocks of 4 MiB rather than 8: its last block, always being
// written, is held whole in memory. Requests are still counted in it.
func TestRateLimitCountersBoundedSmall(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) {
		c.Storage = server.StorageConfig{MaxStore: 10 << 30}
	}})
	ten, err := env.CreateTenant("counters", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := env.Do("GET", "/api/subscriptions", ten.APIKey, nil); err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /api/subscriptions = %v, %v; want 200", r, err)
	}
	_, js := env.JetStream()
	s, err := js.Stream(t.Context(), limiter.CounterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Config.MaxBytes, int64(16<<20); got != want {
		t.Errorf("%s MaxBytes = %d, want %d", limiter.CounterStream, got, want)
	}
	if info.State.Msgs == 0 {
		t.Errorf("%s holds no counter after a request", limiter.CounterStream)
	}
}
