package testenv_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// limitsJSON is the answer of GET /api/limits.
type limitsJSON struct {
	Limits map[string]int64 `json:"limits"`
	Usage  map[string]int64 `json:"usage"`
}

// getLimits reads GET /api/limits. Its usage.requestsPerMinute must be
// what the same answer's rate-limit headers say the window has counted;
// it is checked here and left out of what is returned, since a window
// may end between two requests of a test.
func getLimits(t *testing.T, env *testenv.Env, ten testenv.Tenant) limitsJSON {
	t.Helper()
	r, err := env.Do("GET", "/api/limits", ten.APIKey, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /api/limits = %v %v", r, err)
	}
	var out limitsJSON
	if err := r.JSON(&out); err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Limit"), 10, 64)
	if err != nil {
		t.Fatalf("X-RateLimit-Limit %q", r.Header.Get("X-RateLimit-Limit"))
	}
	counted, ok := out.Usage["requestsPerMinute"]
	if want := limit - int64(remaining(t, r)); !ok || counted != want || counted < 1 {
		t.Errorf("usage.requestsPerMinute = %d (present: %v), want %d: the limit less X-RateLimit-Remaining, this request included", counted, ok, want)
	}
	delete(out.Usage, "requestsPerMinute")
	return out
}

// patchLimits changes a tenant's limits through the operator API and
// returns the tenant as answered.
func patchLimits(t *testing.T, env *testenv.Env, ten testenv.Tenant, body map[string]any) map[string]any {
	t.Helper()
	r, err := env.Do("PATCH", "/admin/tenants/"+ten.ID, env.AdminToken, body)
	if err != nil || r.Status != 200 {
		t.Fatalf("PATCH tenant %v = %v %v", body, r, err)
	}
	var out map[string]any
	r.JSON(&out)
	return out
}

// wantRefused checks an answer is exactly the error shape of a limit
// passed: status and code, and details {limit, max, used}.
func wantRefused(t *testing.T, r *testenv.Response, status int, code, limit string, max, used int64) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("answer %d %s: %v", r.Status, r.Body, err)
	}
	msg, _ := body["error"].(string)
	want := map[string]any{"error": msg, "code": code, "details": map[string]any{"limit": limit, "max": float64(max), "used": float64(used)}}
	if r.Status != status || msg == "" {
		t.Errorf("status %d (error %q), want %d with a message", r.Status, msg, status)
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("refusal (-want +got):\n%s", diff)
	}
}

func remaining(t *testing.T, r *testenv.Response) int {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
	if err != nil {
		t.Fatalf("X-RateLimit-Remaining %q", r.Header.Get("X-RateLimit-Remaining"))
	}
	return n
}

// TestLimitsShownAndChanged: a tenant sees its limits (the flags'
// defaults) and what it uses; the operator's PATCH changes only the names
// it gives, shows every limit, keeps rateLimit and
// limits.requestsPerMinute one value, and applies from the next request;
// null returns a limit to its default; bad values are refused naming them.
func TestLimitsShownAndChanged(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) {
		c.Limits.Subscriptions = 40 // the operator's default, as --limit-subscriptions sets it
		c.Dispatcher.TenantInFlight = 30
	}})
	ten, err := env.CreateTenant("limits", 0)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]int64{"requestsPerMinute": 100, "subscriptions": 40, "eventTypes": 100, "eventBytes": 256 << 10,
		"storedBytes": 10 << 30, "attemptsInFlight": 30, "jobs": 5}
	if diff := cmp.Diff(limitsJSON{Limits: defaults, Usage: map[string]int64{"subscriptions": 0, "eventTypes": 0, "storedBytes": 0, "jobs": 0}}, getLimits(t, env, ten)); diff != "" {
		t.Errorf("GET /api/limits of a new tenant (-want +got):\n%s", diff)
	}
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.updated", "ticket.*")
	subscribe(t, env, ten, rc, "ticket.*", "board.updated")
	if got := getLimits(t, env, ten).Usage; !cmp.Equal(got, map[string]int64{"subscriptions": 2, "eventTypes": 3, "storedBytes": 0, "jobs": 0}) {
		t.Errorf("usage with two subscriptions naming three patterns = %v", got)
	}

	r, _ := env.Do("GET", "/admin/tenants/"+ten.ID, env.AdminToken, nil)
	var tv struct {
		RateLimit int64            `json:"rateLimit"`
		Limits    map[string]int64 `json:"limits"`
	}
	r.JSON(&tv)
	if tv.RateLimit != 100 || !cmp.Equal(tv.Limits, defaults) {
		t.Errorf("GET tenant = %s, want rateLimit 100 and the defaults", r.Body)
	}

	// A partial object changes only what it names.
	got := patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"subscriptions": 500, "jobs": 2}})
	want := map[string]int64{}
	for k, v := range defaults {
		want[k] = v
	}
	want["subscriptions"], want["jobs"] = 500, 2
	b, _ := json.Marshal(got["limits"])
	var patched map[string]int64
	json.Unmarshal(b, &patched)
	if diff := cmp.Diff(want, patched); diff != "" {
		t.Errorf("PATCH answer's limits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, getLimits(t, env, ten).Limits); diff != "" {
		t.Errorf("GET /api/limits after the PATCH (-want +got):\n%s", diff)
	}

	// rateLimit and limits.requestsPerMinute are one value, both ways.
	got = patchLimits(t, env, ten, map[string]any{"rateLimit": 300})
	if got["rateLimit"] != float64(300) || got["limits"].(map[string]any)["requestsPerMinute"] != float64(300) {
		t.Errorf("after rateLimit 300: %v", got)
	}
	got = patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"requestsPerMinute": 250}})
	if got["rateLimit"] != float64(250) || got["limits"].(map[string]any)["requestsPerMinute"] != float64(250) {
		t.Errorf("after limits.requestsPerMinute 250: %v", got)
	}
	if r, _ := env.Do("GET", "/api/limits", ten.APIKey, nil); r.Header.Get("X-RateLimit-Limit") != "250" {
		t.Errorf("X-RateLimit-Limit after the PATCH = %q, want 250", r.Header.Get("X-RateLimit-Limit"))
	}
	// null returns a limit to the default.
	got = patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"subscriptions": nil, "requestsPerMinute": nil}})
	if l := got["limits"].(map[string]any); l["subscriptions"] != float64(40) || l["requestsPerMinute"] != float64(100) || got["rateLimit"] != float64(100) || l["jobs"] != float64(2) {
		t.Errorf("after resetting subscriptions and requestsPerMinute: %v", got)
	}

	for _, tc := range []struct {
		body   any
		fields []string
	}{
		{map[string]any{"limits": map[string]any{"subscriptions": 0}}, []string{"limits.subscriptions"}},
		{map[string]any{"limits": map[string]any{"jobs": -1, "eventTypes": 1.5}}, []string{"limits.eventTypes", "limits.jobs"}},
		{map[string]any{"limits": map[string]any{"eventBytes": 256<<10 + 1, "storedBytes": 1e300}}, []string{"limits.eventBytes", "limits.storedBytes"}},
		{map[string]any{"limits": map[string]any{"requestsPerMinute": 1_000_001}}, []string{"limits.requestsPerMinute"}},
		{map[string]any{"rateLimit": 200, "limits": map[string]any{"requestsPerMinute": 300}}, []string{"limits.requestsPerMinute"}},
	} {
		r, _ := env.Do("PATCH", "/admin/tenants/"+ten.ID, env.AdminToken, tc.body)
		if diff := cmp.Diff(tc.fields, errorFields(t, r)); diff != "" {
			t.Errorf("PATCH %v: fields (-want +got):\n%s", tc.body, diff)
		}
	}
	for _, body := range []string{`{"limits": {"widgets": 3}}`, `{"limits": {"jobs": "3"}}`, `{"limits": 3}`} {
		r, _ := env.Do("PATCH", "/admin/tenants/"+ten.ID, env.AdminToken, []byte(body))
		var e struct{ Code string }
		r.JSON(&e)
		if r.Status != 400 || e.Code != "INVALID_JSON" {
			t.Errorf("PATCH %s = %d %s, want 400 INVALID_JSON", body, r.Status, r.Body)
		}
	}
	// Nothing refused was applied.
	if l := getLimits(t, env, ten).Limits; l["jobs"] != 2 || l["requestsPerMinute"] != 100 || l["subscriptions"] != 40 {
		t.Errorf("limits after refused patches = %v", l)
	}
	// Limits can be given at creation too.
	r, _ = env.Do("POST", "/admin/tenants", env.AdminToken, map[string]any{"name": "custom", "limits": map[string]any{"eventTypes": 7}})
	var created struct{ Limits map[string]int64 }
	r.JSON(&created)
	if r.Status != 201 || created.Limits["eventTypes"] != 7 || created.Limits["subscriptions"] != 40 {
		t.Errorf("create with limits = %d %s", r.Status, r.Body)
	}
}

// TestSubscriptionsLimit: past the limit a create is refused 403 with the
// exact shape, counted like any other error; what exists stays; a freed
// place can be taken again; a lowered limit keeps what is over it.
func TestSubscriptionsLimit(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Server: countLocally(time.Now())})
	ten, err := env.CreateTenant("subs", 0)
	if err != nil {
		t.Fatal(err)
	}
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"subscriptions": 2}})
	rc := receiver(t)
	first := subscribe(t, env, ten, rc, "ticket.updated")
	subscribe(t, env, ten, rc, "ticket.created")
	body := map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.deleted"}}
	before, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, body)
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "subscriptions", 2, 2)
	if got, was := remaining(t, r), remaining(t, before); got != was-1 {
		t.Errorf("X-RateLimit-Remaining after the 403 = %d, want %d: a refusal is counted", got, was-1)
	}
	// With an Idempotency-Key the refusal is not kept: the same request
	// succeeds once there is room.
	r, _ = env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", "k1")
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "subscriptions", 2, 2)

	var list struct{ Data []struct{ ID string } }
	r, _ = env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	r.JSON(&list)
	if len(list.Data) != 2 {
		t.Errorf("subscriptions after the refusal: %s, want the two", r.Body)
	}
	// The subscriptions there still deliver.
	publish(t, env, ten, "ticket.updated")
	if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 {
		t.Errorf("a kept subscription got %d webhooks, want 1", len(got))
	}

	if r, _ := env.Do("DELETE", "/api/subscriptions/"+first.ID, ten.APIKey, nil); r.Status != 204 {
		t.Fatalf("DELETE = %d", r.Status)
	}
	if r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", "k1"); r.Status != 201 {
		t.Errorf("create after a delete = %d %s, want 201", r.Status, r.Body)
	}
	// Lowered under what the tenant has: nothing is removed, nothing added.
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"subscriptions": 1}})
	r, _ = env.Do("POST", "/api/subscriptions", ten.APIKey, body)
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "subscriptions", 1, 2)
	if u := getLimits(t, env, ten).Usage["subscriptions"]; u != 2 {
		t.Errorf("usage.subscriptions = %d, want 2", u)
	}
	// Another tenant is not limited by this one's override.
	other, _ := env.CreateTenant("other", 0)
	if _, err := env.Subscribe(other, rc.URL(), "ticket.deleted"); err != nil {
		t.Errorf("another tenant's create: %v", err)
	}
}

// TestEventTypesLimit: the distinct types and patterns a tenant's
// subscriptions name, each once, are bounded on create and on change.
func TestEventTypesLimit(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"eventTypes": 2}})
	rc := receiver(t)
	a := subscribe(t, env, ten, rc, "ticket.created", "ticket.updated")
	b := subscribe(t, env, ten, rc, "ticket.created") // nothing new
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.created", "ticket.*"}})
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "eventTypes", 2, 2)
	// A change that adds a pattern is refused and leaves the subscription as it was.
	r, _ = env.Do("PATCH", "/api/subscriptions/"+b.ID, ten.APIKey, map[string]any{"eventTypes": []string{"ticket.created", "board.updated"}})
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "eventTypes", 2, 2)
	r, _ = env.Do("GET", "/api/subscriptions/"+b.ID, ten.APIKey, nil)
	if !strings.Contains(string(r.Body), `"eventTypes":["ticket.created"]`) {
		t.Errorf("subscription after a refused change: %s", r.Body)
	}
	// One that swaps a pattern only this subscription named stays within it.
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+a.ID, ten.APIKey, map[string]any{"eventTypes": []string{"ticket.created", "ticket.deleted"}}); r.Status != 200 {
		t.Errorf("swap within the limit = %d %s", r.Status, r.Body)
	}
	if u := getLimits(t, env, ten).Usage["eventTypes"]; u != 2 {
		t.Errorf("usage.eventTypes = %d, want 2", u)
	}
	// Other changes of a subscription are not counted against it.
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+a.ID, ten.APIKey, map[string]any{"description": "still fine"}); r.Status != 200 {
		t.Errorf("description change = %d %s", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.deleted")
	if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 {
		t.Errorf("%d webhooks, want the one of ticket.deleted", len(got))
	}
}

// TestEventBytesLimit: an event whose data is over the tenant's
// eventBytes is refused 413, alone or as any item of a batch, and nothing
// of a refused batch is stored or delivered.
func TestEventBytesLimit(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.updated")
	data := func(n int) json.RawMessage { return json.RawMessage(`{"s":"` + strings.Repeat("x", n-8) + `"}`) } // n bytes
	// The default: 256 KiB.
	r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": data(256<<10 + 1)})
	wantRefused(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "eventBytes", 256<<10, 256<<10+1)

	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"eventBytes": 100}})
	if r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": data(100), "id": "at-the-limit"}); r.Status != 202 {
		t.Fatalf("an event of exactly 100 bytes = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": data(101)})
	wantRefused(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "eventBytes", 100, 101)
	r, _ = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": []any{
		map[string]any{"type": "ticket.updated", "data": data(10), "id": "batch-0"},
		map[string]any{"type": "ticket.updated", "data": data(150), "id": "batch-1"},
	}})
	wantRefused(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "eventBytes", 100, 150)
	if !strings.Contains(string(r.Body), "events[1].data") {
		t.Errorf("batch refusal does not name its item: %s", r.Body)
	}
	marker := publishMarker(t, env, ten)
	got := rc.WaitFor(2, 30*time.Second)
	var ids []string
	for _, w := range got {
		ids = append(ids, w.ID)
	}
	// Unordered deliveries may arrive in either order.
	slices.Sort(ids)
	if want := []string{"at-the-limit", marker}; !slices.Equal(ids, want) {
		t.Errorf("delivered %v, want %v: the event at the limit and the marker", ids, want)
	}
	for _, id := range []string{"batch-0", "batch-1"} {
		if r, _ := env.Do("GET", "/api/events/"+id, ten.APIKey, nil); r.Status != 404 {
			t.Errorf("GET event %s of the refused batch = %d, want 404", id, r.Status)
		}
	}
}

// TestJobsLimit: a replay that needs a job is refused while the tenant
// has its limit of jobs running; the running one goes on, and a replay
// that fits in one page is done at once all the same.
func TestJobsLimit(t *testing.T) {
	t.Parallel()
	// One item a second after the first batch: the job keeps running.
	env := testenv.Start(t, testenv.Options{Jobs: jobs.Config{Rate: 1}})
	ten, err := env.CreateTenant("jobs", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"jobs": 1}})
	rc := receiver(t)
	s := subscribe(t, env, ten, rc, "ticket.updated")
	start := time.Now().UTC().Add(-time.Second)
	publishBatches(t, env, ten, 250)
	rc.WaitFor(250, 30*time.Second)
	since := map[string]any{"since": start.Format(time.RFC3339Nano)}
	r, _ := env.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, since)
	var first struct{ JobID string }
	r.JSON(&first)
	if r.Status != 202 || first.JobID == "" {
		t.Fatalf("first replay = %d %s, want a job", r.Status, r.Body)
	}
	if u := getLimits(t, env, ten).Usage["jobs"]; u != 1 {
		t.Errorf("usage.jobs = %d, want 1", u)
	}
	r, _ = env.Do("POST", "/api/subscriptions/"+s.ID+"/recover", ten.APIKey, since)
	if r.Status != 202 || !strings.Contains(string(r.Body), `"recovered"`) {
		t.Errorf("a recovery done at once = %d %s, want 202 with a count", r.Status, r.Body)
	}
	r, _ = env.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, since)
	wantRefused(t, r, http.StatusForbidden, "QUOTA_EXCEEDED", "jobs", 1, 1)
	r, _ = env.Do("GET", "/api/jobs/"+first.JobID, ten.APIKey, nil)
	var j struct{ Status string }
	r.JSON(&j)
	if r.Status != 200 || j.Status != jobs.StatusRunning {
		t.Errorf("the running job after the refusal = %d %s", r.Status, r.Body)
	}
	// A raised limit applies on the next request.
	patchLimits(t, env, ten, map[string]any{"limits": map[string]any{"jobs": 2}})
	if r, _ := env.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, since); r.Status != 202 || !strings.Contains(string(r.Body), "jobId") {
		t.Errorf("replay after raising jobs to 2 = %d %s", r.Status, r.Body)
	}
}

// TestAttemptsInFlightLimit: attemptsInFlight bounds a tenant's attempts
// past their lent second: with 1, an attempt that hangs holds the
// tenant's next one back until it ends, while the default lets it go.
func TestAttemptsInFlightLimit(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Timeout: 5 * time.Minute})
	limited, _ := env.CreateTenant("limited", 0)
	free, _ := env.CreateTenant("free", 0)
	marker, _ := env.CreateTenant("marker", 0)
	patchLimits(t, env, limited, map[string]any{"limits": map[string]any{"attemptsInFlight": 1}})
	if l := getLimits(t, env, limited).Limits["attemptsInFlight"]; l != 1 {
		t.Fatalf("attemptsInFlight = %d", l)
	}
	mk := receiver(t)
	subscribe(t, env, marker, mk, "ticket.updated")

	// Each tenant's first attempt hangs past its lent second; then a
	// second event follows.
	for _, tc := range []struct {
		ten      testenv.Tenant
		heldBack bool
	}{{free, false}, {limited, true}} {
		rc := receiver(t)
		release := make(chan struct{})
		done := sync.OnceFunc(func() { close(release) })
		t.Cleanup(done) // before the receiver closes, which waits for its requests
		rc.Respond(func(n int, _ *http.Request) int {
			if n == 1 {
				<-release
			}
			return http.StatusNoContent
		})
		subscribe(t, env, tc.ten, rc, "ticket.updated")
		poll.Until(t, 30*time.Second, "no attempt in flight", func() bool { return metric(t, env, "webhooks_attempts_in_flight") == 0 })
		demoted := metric(t, env, "webhooks_attempts_demoted_total")
		publish(t, env, tc.ten, "ticket.updated")
		poll.Until(t, 30*time.Second, "first attempt at the receiver", func() bool { return rc.Count() == 1 })
		poll.Until(t, 30*time.Second, "first attempt past its lent second", func() bool {
			return metric(t, env, "webhooks_attempts_demoted_total") > demoted
		})
		publish(t, env, tc.ten, "ticket.updated")
		if !tc.heldBack {
			poll.Until(t, 30*time.Second, "second attempt beside the hanging one", func() bool { return rc.Count() == 2 })
			done()
			continue
		}
		// The marker tenant's event, published after the second one, is
		// delivered: the second one was fanned out, and is held back.
		n := mk.Count()
		publish(t, env, marker, "ticket.updated")
		if got := mk.WaitFor(n+1, 30*time.Second); len(got) != n+1 {
			t.Fatalf("marker not delivered")
		}
		if got := rc.Count(); got != 1 {
			t.Errorf("the limited tenant's receiver got %d requests while its first hung, want 1", got)
		}
		done()
		poll.Until(t, 30*time.Second, "second attempt once the first ended", func() bool { return rc.Count() == 2 })
	}
}
