package testenv_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

func setup(t *testing.T, o testenv.Options) (*testenv.Env, testenv.Tenant) {
	t.Helper()
	env := testenv.Start(t, o)
	ten, err := env.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	return env, ten
}

func receiver(t *testing.T) *testenv.Receiver {
	rc := testenv.NewReceiver()
	t.Cleanup(rc.Close)
	return rc
}

// failingReceiver answers status until its switch is turned off, then 200.
func failingReceiver(t *testing.T, status int) (*testenv.Receiver, *atomic.Bool) {
	rc := receiver(t)
	var failing atomic.Bool
	failing.Store(true)
	rc.Respond(func(int, *http.Request) int {
		if failing.Load() {
			return status
		}
		return http.StatusOK
	})
	return rc, &failing
}

func subscribe(t *testing.T, env *testenv.Env, ten testenv.Tenant, rc *testenv.Receiver, types ...string) testenv.Subscription {
	t.Helper()
	s, err := env.Subscribe(ten, rc.URL(), types...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.SetSecrets(s.Secret); err != nil {
		t.Fatal(err)
	}
	return s
}

func publish(t *testing.T, env *testenv.Env, ten testenv.Tenant, typ string) string {
	t.Helper()
	id, err := env.Publish(ten, typ, map[string]any{"ticketId": "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// matchedEverywhere waits until the index of each of envs (stacks on one
// NATS) matches n of the tenant's subscriptions to event type typ. The
// stacks share the fan-out, so any of them may fan out an event, against
// its own index, which learns of a subscription made through another
// stack by a watch: an event published before that would miss it there.
func matchedEverywhere(t *testing.T, ten testenv.Tenant, typ string, n int, envs ...*testenv.Env) {
	t.Helper()
	poll.Until(t, 30*time.Second, fmt.Sprintf("%d subscriptions to %s in every stack's index", n, typ), func() bool {
		for _, env := range envs {
			if len(env.Store().Index().Match(nil, ten.ID, typ)) != n {
				return false
			}
		}
		return true
	})
}

// distinctIDs counts the events (webhook-ids) among webhooks.
func distinctIDs(got []testenv.Received) int {
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.ID] = true
	}
	return len(ids)
}

// waitDistinct waits until rc holds webhooks of at least n distinct events,
// or limit passes, and returns everything it received. Delivery is at
// least once: a repeated delivery counts in WaitFor's n, so WaitFor(n)
// can return before n events arrived.
func waitDistinct(rc *testenv.Receiver, n int, limit time.Duration) []testenv.Received {
	var got []testenv.Received
	poll.Within(limit, func() bool {
		got = rc.Received()
		return distinctIDs(got) >= n
	})
	return got
}

// publishBatches publishes n ticket.updated events through the batch call,
// 100 a request, and returns their ids in order.
func publishBatches(t *testing.T, env *testenv.Env, ten testenv.Tenant, n int) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += 100 {
		evts := make([]map[string]any, min(100, n-start))
		for i := range evts {
			evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": start + i}}
		}
		r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts})
		if err != nil || r.Status != 202 {
			t.Fatalf("publish batch: %v %v", r, err)
		}
		var out struct{ IDs []string }
		if err := r.JSON(&out); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.IDs...)
	}
	return ids
}

func TestDeliversExactlyTheMatchingTypes(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	exact, family, all := receiver(t), receiver(t), receiver(t)
	subscribe(t, env, ten, exact, "ticket.updated")
	subscribe(t, env, ten, family, "ticket.*")
	subscribe(t, env, ten, all, "*")

	var ids []string
	for _, typ := range []string{"ticket.updated", "ticket.created", "board.updated", "service_catalog.item.created"} {
		ids = append(ids, publish(t, env, ten, typ))
	}
	all.WaitFor(4, 30*time.Second)
	family.WaitFor(2, 30*time.Second)
	exact.WaitFor(1, 30*time.Second)
	// A marker only "*" matches: once it arrived, the events before it
	// were fanned out to every subscription too.
	publish(t, env, ten, "account.created")
	all.WaitFor(5, 30*time.Second)

	types := func(rs []testenv.Received) []string {
		var out []string
		for _, r := range rs {
			e, err := events.Parse(r.Body)
			if err != nil {
				t.Fatalf("webhook body: %v", err)
			}
			if r.Verified != nil {
				t.Errorf("signature of %s: %v", e.ID, r.Verified)
			}
			if r.ID != e.ID {
				t.Errorf("webhook-id %q, body id %q", r.ID, e.ID)
			}
			if e.TenantID != ten.ID {
				t.Errorf("tenantId %q, want %q", e.TenantID, ten.ID)
			}
			out = append(out, e.Type)
		}
		slices.Sort(out)
		return out
	}
	if got, want := types(exact.Received()), []string{"ticket.updated"}; !slices.Equal(got, want) {
		t.Errorf("exact subscription got %v, want %v", got, want)
	}
	if got, want := types(family.Received()), []string{"ticket.created", "ticket.updated"}; !slices.Equal(got, want) {
		t.Errorf("family subscription got %v, want %v", got, want)
	}
	if got := len(all.Received()); got != 5 {
		t.Errorf("* subscription got %d webhooks, want 5", got)
	}
	r := exact.Received()[0]
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := r.Header.Get("User-Agent"); len(ua) < len("onestack-webhooks/") || ua[:18] != "onestack-webhooks/" {
		t.Errorf("User-Agent = %q", ua)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "type", "tenantId", "occurredAt", "data"} {
		if _, ok := body[k]; !ok {
			t.Errorf("webhook body lacks %q: %s", k, r.Body)
		}
	}
	if len(body) != 5 {
		t.Errorf("webhook body has %d keys, want 5: %s", len(body), r.Body)
	}
}

func TestRetriesWithTheSameWebhookID(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	rc.Respond(func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	subscribe(t, env, ten, rc, "ticket.updated")
	id := publish(t, env, ten, "ticket.updated")
	got := rc.WaitFor(2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d requests, want 2 (a 500, then the retry)", len(got))
	}
	for i, r := range got {
		if r.ID != id {
			t.Errorf("request %d webhook-id = %q, want %q", i, r.ID, id)
		}
		if r.Verified != nil {
			t.Errorf("request %d signature: %v", i, r.Verified)
		}
	}
}

func TestDeleteStopsDeliveries(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	gone, stays := receiver(t), receiver(t)
	s := subscribe(t, env, ten, gone, "ticket.updated")
	subscribe(t, env, ten, stays, "ticket.updated")
	publish(t, env, ten, "ticket.updated")
	if n := len(gone.WaitFor(1, 30*time.Second)); n != 1 {
		t.Fatalf("before delete: got %d, want 1", n)
	}
	r, err := env.Do("DELETE", "/api/subscriptions/"+s.ID, ten.APIKey, nil)
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("DELETE = %v %v", r, err)
	}
	for range 5 {
		publish(t, env, ten, "ticket.updated")
	}
	if n := len(stays.WaitFor(6, 30*time.Second)); n != 6 {
		t.Fatalf("the other subscription got %d, want 6", n)
	}
	if n := gone.Count(); n != 1 {
		t.Errorf("deleted subscription got %d webhooks, want 1 (none after the 204)", n)
	}
}
