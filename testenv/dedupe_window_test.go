package testenv_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// natsWindow is the events stream's own duplicate window in these tests:
// short, so that a repeat is answered from the event index alone.
const natsWindow = time.Second

func shortNATSWindow(c *server.Config) { c.Events.NATSWindow = natsWindow }

// waitNATSForgets waits until the events stream's own duplicate window
// has passed for every event stored before the call: an id published
// then (by a tenant no test uses) is, from then on, stored again rather
// than taken for a duplicate.
func waitNATSForgets(t *testing.T, env *testenv.Env) {
	t.Helper()
	_, js := env.JetStream()
	probe := events.Event{ID: events.NewID(), Type: "ticket.updated", TenantID: "ten_probe", OccurredAt: time.Now().UTC(), Data: []byte(`{}`)}
	if _, err := js.PublishMsg(t.Context(), probe.Msg(true)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the stream's own duplicate window passed", func() bool {
		ack, err := js.PublishMsg(t.Context(), probe.Msg(true))
		return err == nil && !ack.Duplicate
	})
}

// postID posts one event with a client-chosen id and wants 202 with it.
func postID(t *testing.T, env *testenv.Env, ten testenv.Tenant, id string) {
	t.Helper()
	r, err := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"id": id, "type": "ticket.updated", "data": map[string]any{"id": id}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ ID string }
	if r.JSON(&out); r.Status != http.StatusAccepted || out.ID != id {
		t.Fatalf("POST /api/events id %s = %d %s, want 202 with the id", id, r.Status, r.Body)
	}
}

// postBatchIDs posts a batch of events with the given ids and wants 202
// with them, in order.
func postBatchIDs(t *testing.T, env *testenv.Env, ten testenv.Tenant, ids ...string) {
	t.Helper()
	var evts []map[string]any
	for _, id := range ids {
		evts = append(evts, map[string]any{"id": id, "type": "ticket.updated", "data": map[string]any{"id": id}})
	}
	r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ IDs []string }
	if r.JSON(&out); r.Status != http.StatusAccepted || !slices.Equal(out.IDs, ids) {
		t.Fatalf("POST /api/events/batch %v = %d %s, want 202 with the ids", ids, r.Status, r.Body)
	}
}

// receivedIDs waits for a marker published last and for each of want,
// then returns every id rc received, sorted: once the marker arrived, any
// repeat published before it would have too. The marker alone is no
// proof that the events before it arrived (an unordered subscription's
// deliveries run side by side, on two replicas too), so each id wanted
// is waited for as well; one never delivered is missing from the
// answer once the bound has passed.
func receivedIDs(t *testing.T, env *testenv.Env, ten testenv.Tenant, rc *testenv.Receiver, want ...string) []string {
	t.Helper()
	marker := publish(t, env, ten, "ticket.updated")
	arrived := func(id string) bool {
		return slices.ContainsFunc(rc.Received(), func(r testenv.Received) bool { return r.ID == id })
	}
	poll.Until(t, 30*time.Second, "the marker delivered", func() bool { return arrived(marker) })
	poll.Within(30*time.Second, func() bool {
		for _, id := range want {
			if !arrived(id) {
				return false
			}
		}
		return true
	})
	var ids []string
	for _, r := range rc.Received() {
		if r.ID != marker {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestDuplicateWindowPastNATS: with the stream's own window passed, the
// same id from one tenant is still answered 202 with that id and
// delivered once (a single event, and in batches, a batch repeating an id
// of its own too); the same id from another tenant is another event.
func TestDuplicateWindowPastNATS(t *testing.T) {
	t.Parallel()
	env, a := setup(t, testenv.Options{Server: shortNATSWindow})
	b, err := env.CreateTenant("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := receiver(t), receiver(t)
	subscribe(t, env, a, ra, "ticket.updated")
	subscribe(t, env, b, rb, "ticket.updated")
	postID(t, env, a, "order-1")
	postBatchIDs(t, env, a, "batch-1", "batch-2", "batch-1")
	waitNATSForgets(t, env)

	postID(t, env, a, "order-1")
	postBatchIDs(t, env, a, "batch-2", "batch-3", "order-1")
	postID(t, env, b, "order-1")
	wantA := []string{"batch-1", "batch-2", "batch-3", "order-1"}
	if diff := cmp.Diff(wantA, receivedIDs(t, env, a, ra, wantA...)); diff != "" {
		t.Errorf("tenant A's deliveries, each id once (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"order-1"}, receivedIDs(t, env, b, rb, "order-1")); diff != "" {
		t.Errorf("tenant B's deliveries: its own order-1 (-want +got):\n%s", diff)
	}
	if n := storedEvents(t, env, a.ID); n != 5 {
		t.Errorf("tenant A has %d events stored, want 5: four ids once and the marker", n)
	}
}

// TestDuplicateWindowAcrossRestart: the window holds across a restart on
// the same data directory, and across one that rebuilds the event index
// from the stream (its directory removed).
func TestDuplicateWindowAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testenv.Options{DataDir: dir, Server: shortNATSWindow}
	env, ten := setup(t, o)
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.updated")
	postID(t, env, ten, "order-1")
	waitNATSForgets(t, env)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}

	env = testenv.Start(t, o)
	postID(t, env, ten, "order-1")
	waitNATSForgets(t, env)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "eventindex")); err != nil {
		t.Fatal(err)
	}

	env = testenv.Start(t, o)
	postID(t, env, ten, "order-1")
	if diff := cmp.Diff([]string{"order-1"}, receivedIDs(t, env, ten, rc, "order-1")); diff != "" {
		t.Errorf("deliveries after two restarts, one rebuilding the index (-want +got):\n%s", diff)
	}
	if n := storedEvents(t, env, ten.ID); n != 2 {
		t.Errorf("%d events stored, want 2: order-1 once and the marker", n)
	}
}

// TestDuplicateWindowAcrossReplicas: two webhookd on one NATS; an id
// posted to one and, past the stream's own window, to the other is
// delivered once.
func TestDuplicateWindowAcrossReplicas(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, natstest.Options{})
	o := testenv.Options{NATSURL: ns.ClientURL(), Server: shortNATSWindow}
	one := testenv.Start(t, o)
	two := testenv.Start(t, o)
	ten, err := one.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	subscribe(t, one, ten, rc, "ticket.updated")
	matchedEverywhere(t, ten, "ticket.updated", 1, one, two)
	postID(t, one, ten, "order-1")
	postBatchIDs(t, one, ten, "batch-1")
	waitNATSForgets(t, one)
	postID(t, two, ten, "order-1")
	postBatchIDs(t, two, ten, "batch-1", "batch-2")
	want := []string{"batch-1", "batch-2", "order-1"}
	if diff := cmp.Diff(want, receivedIDs(t, two, ten, rc, want...)); diff != "" {
		t.Errorf("deliveries, each id once (-want +got):\n%s", diff)
	}
	if n := storedEvents(t, one, ten.ID); n != 4 {
		t.Errorf("%d events stored, want 4: three ids once and the marker", n)
	}
}

// TestStoredBytesLimit: a tenant sees its stored bytes; a publish that
// would take it past storedBytes is refused 403 QUOTA_EXCEEDED with
// {limit, max, used}, nothing of it stored, and what was accepted before
// is delivered; a repeat of an id already stored is not refused (it adds
// nothing); another tenant is not held to it.
func TestStoredBytesLimit(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, err := env.CreateTenant("stored", 1_000_000) // usage is polled
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.CreateTenant("other", 0)
	if err != nil {
		t.Fatal(err)
	}
	const max = 3000
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"storedBytes": max}})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.updated")
	if u := getLimits(t, env, ten).Usage["storedBytes"]; u != 0 {
		t.Errorf("usage.storedBytes of a tenant without events = %d, want 0", u)
	}
	big := map[string]any{"blob": string(make([]byte, 1000))} // 1,000 NULs: 6,000 bytes of JSON
	small := map[string]any{"blob": "x"}
	r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"id": "first", "type": "ticket.updated", "data": small})
	if r.Status != http.StatusAccepted {
		t.Fatalf("first event = %d %s", r.Status, r.Body)
	}
	var used int64
	poll.Until(t, 30*time.Second, "usage.storedBytes counts the first event", func() bool {
		used = getLimits(t, env, ten).Usage["storedBytes"]
		return used > 0
	})
	if used >= max {
		t.Fatalf("one small event counts %d bytes, over the test's limit %d", used, max)
	}
	r, _ = env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": big})
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "storedBytes", max, used)
	r, _ = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": []map[string]any{
		{"type": "ticket.updated", "data": small}, {"type": "ticket.updated", "data": big}}})
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "storedBytes", max, used)
	postID(t, env, ten, "first") // a repeat adds nothing
	if r, _ := env.Do("POST", "/api/events", other.APIKey, map[string]any{"type": "ticket.updated", "data": big}); r.Status != http.StatusAccepted {
		t.Errorf("another tenant's event = %d %s, want 202", r.Status, r.Body)
	}
	if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 || got[0].ID != "first" {
		t.Errorf("delivered %d webhooks, want the first event", len(got))
	}
	if n := storedEvents(t, env, ten.ID); n != 1 {
		t.Errorf("%d events stored, want the first alone", n)
	}
}
