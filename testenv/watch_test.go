package testenv_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// TestRevokedKeyAfterBrokenWatch: when nats.go ends the API keys' watch
// (it could not rebuild its consumer), /readyz names it until it is
// running again, and keys revoked meanwhile by another replica stop
// authenticating once it is: one whose delete marker is still in the
// bucket, and one whose marker is gone (as when its TTL passes during a
// long outage). The restart is counted.
func TestRevokedKeyAfterBrokenWatch(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	r, err := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	var second struct{ ID, Key string }
	if err := r.JSON(&second); err != nil || r.Status != http.StatusCreated {
		t.Fatalf("new key = %d %s", r.Status, r.Body)
	}
	status := func(key string) int {
		t.Helper()
		r, err := env.Do("GET", "/api/subscriptions", key, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	for _, key := range []string{ten.APIKey, second.Key} {
		if got := status(key); got != http.StatusOK {
			t.Fatalf("GET /api/subscriptions with a new key = %d, want 200", got)
		}
	}
	const restarted = `webhooks_kv_watch_restarts_total{bucket="apikeys"}`
	if got := metric(t, env, restarted); got != 0 {
		t.Errorf("%s = %v before any outage, want 0", restarted, got)
	}

	_, js := env.JetStream()
	mend := natstest.BreakWatches(t, js, "apikeys")
	poll.Until(t, 10*time.Second, "/readyz naming the ended watch", func() bool {
		r, err := env.Do("GET", "/readyz", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Details struct{ Missing []string } }
		r.JSON(&body)
		return r.Status == http.StatusServiceUnavailable &&
			slices.ContainsFunc(body.Details.Missing, func(m string) bool { return strings.HasPrefix(m, "watch apikeys: ") })
	})
	// Another replica revokes both keys; this one is not told.
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "apikeys")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ten.KeyID, second.ID} {
		if err := kv.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	st, err := js.Stream(ctx, "KV_apikeys")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV.apikeys."+second.ID)); err != nil {
		t.Fatal(err)
	}
	if got := status(ten.APIKey); got != http.StatusOK {
		t.Fatalf("a revoked key while the watch is down = %d, want 200 (this replica's index still holds it)", got)
	}
	mend()

	poll.Until(t, 30*time.Second, "the revoked keys refused", func() bool {
		return status(ten.APIKey) == http.StatusUnauthorized && status(second.Key) == http.StatusUnauthorized
	})
	poll.Until(t, 10*time.Second, "/readyz ready", func() bool {
		r, err := env.Do("GET", "/readyz", "", nil)
		return err == nil && r.Status == http.StatusOK
	})
	if got := metric(t, env, restarted); got != 1 {
		t.Errorf("%s = %v after one outage, want 1", restarted, got)
	}
}
