package testenv_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/testenv"
)

type deliveryJSON struct {
	ID             string
	EventID        string
	EventType      string
	SubscriptionID string
	Status         string
	Attempts       []struct {
		At           time.Time
		StatusCode   *int
		Error        *string
		DurationMs   int64
		ResponseBody string
	}
	NextAttemptAt *time.Time
	CreatedAt     time.Time
}

// requestEvery spaces the checks of a wait whose every check is a request
// counted against the tenant's budget (100 a minute by default): checked
// every few milliseconds, a slow machine spends it in a second, and the
// 429s that follow outlast the wait.
const requestEvery = 100 * time.Millisecond

// untilCounted is poll.Until for a condition that makes requests counted
// against a tenant's budget: checked every requestEvery, for 30 s.
func untilCounted(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.WithinEvery(30*time.Second, requestEvery, cond) {
		t.Fatalf("%s: not within 30s", what)
	}
}

// pollDeliveries reads a subscription's deliveries until ok accepts them.
func pollDeliveries(t *testing.T, env *testenv.Env, ten testenv.Tenant, sub, query string, ok func([]deliveryJSON) bool) []deliveryJSON {
	t.Helper()
	var page struct{ Data []deliveryJSON }
	var r *testenv.Response
	// Every check is a request counted against the tenant's budget.
	if !poll.WithinEvery(30*time.Second, requestEvery, func() bool {
		var err error
		if r, err = env.Do("GET", "/api/subscriptions/"+sub+"/deliveries"+query, ten.APIKey, nil); err != nil || r.Status != 200 {
			t.Fatalf("list deliveries = %v %v", r, err)
		}
		page.Data = nil
		if err := r.JSON(&page); err != nil {
			t.Fatal(err)
		}
		return ok(page.Data)
	}) {
		t.Fatalf("deliveries of %s never became as expected: %s", sub, r.Body)
	}
	return page.Data
}

// TestAttemptLogAndManualRetry: a failing endpoint's delivery records every
// attempt and is given up (the tenant hears delivery.exhausted); a manual
// retry makes exactly one more attempt, and its outcome becomes the status.
func TestAttemptLogAndManualRetry(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc, failing := failingReceiver(t, http.StatusInternalServerError)
	rc.Body([]byte(strings.Repeat("e", 2000)))
	sub := subscribe(t, env, ten, rc, "ticket.*")
	watcher := receiver(t)
	subscribe(t, env, ten, watcher, "delivery.exhausted", "subscription.disabled")
	evt := publish(t, env, ten, "ticket.updated")

	got := pollDeliveries(t, env, ten, sub.ID, "?status=failed", func(d []deliveryJSON) bool { return len(d) == 1 })[0]
	if got.EventID != evt || got.EventType != "ticket.updated" || got.SubscriptionID != sub.ID || len(got.Attempts) != 3 || got.NextAttemptAt != nil {
		t.Fatalf("failed delivery = %+v, want 3 attempts of %s and no next attempt", got, evt)
	}
	for i, a := range got.Attempts {
		if a.StatusCode == nil || *a.StatusCode != 500 || a.Error == nil || len(a.ResponseBody) != 1024 {
			t.Errorf("attempt %d = status %v, error %v, %d bytes of answer; want 500, an error and the first 1,024 bytes", i, a.StatusCode, a.Error, len(a.ResponseBody))
		}
	}
	if rc.Count() != 3 {
		t.Errorf("receiver got %d attempts, want 3", rc.Count())
	}
	ex := watcher.WaitFor(1, 30*time.Second)
	if len(ex) != 1 || !strings.Contains(string(ex[0].Body), got.ID) || !strings.Contains(string(ex[0].Body), `"delivery.exhausted"`) {
		t.Fatalf("tenant's delivery.exhausted webhooks = %d, want one naming %s", len(ex), got.ID)
	}

	one, _ := env.Do("GET", "/api/deliveries/"+got.ID, ten.APIKey, nil)
	if one.Status != 200 || !strings.Contains(string(one.Body), got.ID) {
		t.Errorf("GET delivery = %d %s", one.Status, one.Body)
	}
	failing.Store(false)
	r, _ := env.Do("POST", "/api/deliveries/"+got.ID+"/retry", ten.APIKey, nil)
	if r.Status != 202 {
		t.Fatalf("retry = %d %s, want 202", r.Status, r.Body)
	}
	after := pollDeliveries(t, env, ten, sub.ID, "", func(d []deliveryJSON) bool { return len(d) == 1 && d[0].Status == "succeeded" })[0]
	if len(after.Attempts) != 4 || rc.Count() != 4 {
		t.Errorf("after a manual retry: %d attempts logged, %d received; want 4 and 4", len(after.Attempts), rc.Count())
	}
	if rc.Received()[3].ID != evt {
		t.Errorf("manual retry carried webhook-id %q, want %q", rc.Received()[3].ID, evt)
	}
	if r, _ := env.Do("GET", "/api/deliveries/"+got.ID, "", nil); r.Status != 401 {
		t.Errorf("GET delivery without a key = %d", r.Status)
	}
	other, _ := env.CreateTenant("other", 0)
	foreign, _ := env.Do("GET", "/api/deliveries/"+got.ID, other.APIKey, nil)
	unknown, _ := env.Do("GET", "/api/deliveries/dlv_01ZZZZZZZZZZZZZZZZZZZZZZZZ01ZZZZZZZZZZZZZZZZZZZZZZZZ", other.APIKey, nil)
	if foreign.Status != 404 || string(foreign.Body) != string(unknown.Body) {
		t.Errorf("another tenant's delivery = %d %s, unknown = %s; want the same 404", foreign.Status, foreign.Body, unknown.Body)
	}
}

// TestGoneDisablesThenReplay: 410 disables the subscription at once; an
// event while disabled is kept as skipped; re-enabled, a replay delivers it.
func TestGoneDisablesThenReplay(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc, gone := failingReceiver(t, http.StatusGone)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	watcher := receiver(t)
	subscribe(t, env, ten, watcher, "subscription.disabled")
	start := time.Now().UTC()
	first := publish(t, env, ten, "ticket.updated")

	if got := watcher.WaitFor(1, 30*time.Second); len(got) != 1 || !strings.Contains(string(got[0].Body), sub.ID) {
		t.Fatalf("tenant's subscription.disabled webhooks = %d, want one naming %s", len(got), sub.ID)
	}
	r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	var s struct {
		Active         bool
		DisabledReason *string
	}
	r.JSON(&s)
	if s.Active || s.DisabledReason == nil || !strings.Contains(*s.DisabledReason, "410") {
		t.Fatalf("after 410: %s, want inactive with a reason", r.Body)
	}
	if rc.Count() != 1 {
		t.Errorf("a 410 was retried: %d attempts, want 1", rc.Count())
	}
	second := publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=skipped", func(d []deliveryJSON) bool { return len(d) == 1 && d[0].EventID == second })

	gone.Store(false)
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+sub.ID, ten.APIKey, map[string]any{"active": true}); r.Status != 200 || strings.Contains(string(r.Body), "410") {
		t.Fatalf("re-enable = %d %s, want active with no reason", r.Status, r.Body)
	}
	r, _ = env.Do("POST", "/api/subscriptions/"+sub.ID+"/replay", ten.APIKey, map[string]any{"since": start.Add(-time.Second).Format(time.RFC3339Nano)})
	var replayed struct{ Replayed int }
	r.JSON(&replayed)
	if r.Status != 202 || replayed.Replayed != 2 {
		t.Fatalf("replay = %d %s, want 202 replaying both events", r.Status, r.Body)
	}
	got := rc.WaitFor(3, 30*time.Second)
	ids := map[string]bool{}
	for _, g := range got[1:] {
		ids[g.ID] = true
	}
	if len(got) != 3 || !ids[first] || !ids[second] {
		t.Errorf("after replay the receiver got %d webhooks (%v), want both events again", len(got), ids)
	}
	if r, _ := env.Do("POST", "/api/subscriptions/"+sub.ID+"/replay", ten.APIKey, map[string]any{"until": start.Format(time.RFC3339)}); r.Status != 400 {
		t.Errorf("replay without since = %d, want 400", r.Status)
	}
}

// TestRetryAfterIsHonoured: a 429 with Retry-After sets the next attempt
// at that distance instead of the schedule's 100 ms.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	rc.Respond(func(int, *http.Request) int { return http.StatusTooManyRequests })
	rc.Header("Retry-After", "3600")
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	d := pollDeliveries(t, env, ten, sub.ID, "?status=pending", func(d []deliveryJSON) bool { return len(d) == 1 && len(d[0].Attempts) == 1 })[0]
	wait := d.NextAttemptAt.Sub(d.Attempts[0].At)
	if wait < 59*time.Minute || wait > 61*time.Minute {
		t.Errorf("next attempt %v after the 429, want the receiver's Retry-After of 1 h", wait)
	}
}

func TestDeliveriesPagesNewestFirst(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	var events []string
	for range 5 {
		events = append(events, publish(t, env, ten, "ticket.updated"))
	}
	pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 5 })
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/deliveries?limit=2"+cursor, ten.APIKey, nil)
		var page struct {
			Data       []deliveryJSON
			NextCursor string
		}
		if err := json.Unmarshal(r.Body, &page); err != nil || r.Status != 200 || pages > 5 {
			t.Fatalf("page %d = %d %s", pages, r.Status, r.Body)
		}
		for _, d := range page.Data {
			seen = append(seen, d.EventID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d deliveries, want 5", len(seen))
	}
	for i := range seen {
		if seen[i] != events[len(events)-1-i] {
			t.Errorf("page order %v, want newest first %v", seen, events)
			break
		}
	}
	if r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/deliveries?status=lost", ten.APIKey, nil); r.Status != 400 {
		t.Errorf("unknown status filter = %d, want 400", r.Status)
	}
}

// TestEndpointHealthDisables: after the configured number of deliveries
// given up in a row, the subscription is disabled and says why.
func TestEndpointHealthDisables(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{}, Dispatcher: dispatcher.Config{Health: subscriptions.HealthPolicy{GivenUp: 2}}})
	rc := receiver(t)
	rc.Respond(func(int, *http.Request) int { return http.StatusBadGateway })
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=failed", func(d []deliveryJSON) bool { return len(d) == 1 })
	if r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); !strings.Contains(string(r.Body), `"active":true`) {
		t.Fatalf("disabled after one given-up delivery: %s", r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	var r *testenv.Response
	if !poll.WithinEvery(30*time.Second, requestEvery, func() bool {
		r, _ = env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
		return strings.Contains(string(r.Body), `"active":false`) && strings.Contains(string(r.Body), "2 deliveries in a row")
	}) {
		t.Fatalf("not disabled after 2 given-up deliveries: %s", r.Body)
	}
}

func TestTestEndpointSendsOnlyToThatSubscription(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	target, bystander := receiver(t), receiver(t)
	sub := subscribe(t, env, ten, target, "board.updated")
	subscribe(t, env, ten, bystander, "*")
	r, _ := env.Do("POST", "/api/subscriptions/"+sub.ID+"/test", ten.APIKey, nil)
	var out struct{ EventID string }
	r.JSON(&out)
	if r.Status != 202 || out.EventID == "" {
		t.Fatalf("test = %d %s", r.Status, r.Body)
	}
	got := target.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].ID != out.EventID || !strings.Contains(string(got[0].Body), `"webhook.test"`) || got[0].Verified != nil {
		t.Fatalf("target got %d webhooks, want the signed webhook.test %s", len(got), out.EventID)
	}
	publish(t, env, ten, "account.created") // a marker the bystander gets
	if b := bystander.WaitFor(1, 30*time.Second); len(b) != 1 || strings.Contains(string(b[0].Body), "webhook.test") {
		t.Errorf("bystander got %d webhooks (%v), want only the marker", len(b), b)
	}
}

// TestSubscriptionPace: rateLimit spaces deliveries. At 4 a second, 6
// deliveries take at least 1.25 s from first to last; the check is a lower
// bound, which a slow machine can only make easier to meet.
func TestSubscriptionPace(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "rateLimit": 4})
	if r.Status != 201 || !strings.Contains(string(r.Body), `"rateLimit":4`) {
		t.Fatalf("create paced subscription = %d %s", r.Status, r.Body)
	}
	if bad, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"*"}, "rateLimit": -1}); bad.Status != 400 {
		t.Errorf("negative rateLimit = %d, want 400", bad.Status)
	}
	for range 6 {
		publish(t, env, ten, "ticket.updated")
	}
	got := rc.WaitFor(6, 30*time.Second)
	if len(got) != 6 {
		t.Fatalf("got %d deliveries, want 6", len(got))
	}
	if span := got[5].At.Sub(got[0].At); span < time.Second {
		t.Errorf("6 deliveries at 4/s arrived within %v, want at least 1 s", span)
	}
}

// TestFIFOOrdering: on a FIFO subscription the first event fails twice
// and then succeeds; the four published right after it arrive only after
// it succeeded, in publish order.
func TestFIFOOrdering(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	fifo := receiver(t)
	fifo.Respond(func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": fifo.URL(), "eventTypes": []string{"ticket.*"}, "ordering": "fifo"})
	if r.Status != 201 || !strings.Contains(string(r.Body), `"ordering":"fifo"`) {
		t.Fatalf("create FIFO subscription = %d %s", r.Status, r.Body)
	}
	if bad, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": fifo.URL(), "eventTypes": []string{"*"}, "ordering": "random"}); bad.Status != 400 {
		t.Errorf("ordering \"random\" = %d, want 400", bad.Status)
	}
	ids := publishBatches(t, env, ten, 5)
	got := fifo.WaitFor(7, 30*time.Second)
	if len(got) != 7 {
		t.Fatalf("FIFO receiver got %d requests, want 7 (the first event 3 times, then 4)", len(got))
	}
	want := []string{ids[0], ids[0], ids[0], ids[1], ids[2], ids[3], ids[4]}
	for i, g := range got {
		if g.ID != want[i] {
			var order []string
			for _, g := range got {
				order = append(order, g.ID)
			}
			t.Fatalf("FIFO order = %v, want %v", order, want)
		}
	}
}
