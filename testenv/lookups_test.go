package testenv_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/testenv"
)

type eventJSON struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Data       map[string]any
	Deliveries []deliveryJSON
}

type jobJSON struct {
	ID, Kind, SubscriptionID, Status string
	Total, Sent, Filtered            int64
	Error                            *string
}

// listEvents reads every page of GET /api/events with query.
func listEvents(t *testing.T, env *testenv.Env, ten testenv.Tenant, query string) []eventJSON {
	t.Helper()
	var all []eventJSON
	cursor := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r, err := env.Do("GET", "/api/events?"+q, ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			t.Fatalf("GET /api/events?%s = %v %v", q, r, err)
		}
		var page struct {
			Data       []eventJSON
			NextCursor string
		}
		if err := r.JSON(&page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// ids returns the ids of the ticket events of a listing (the tenant's
// own delivery.exhausted events are listed too).
func ids(es []eventJSON) []string {
	out := []string{}
	for _, e := range es {
		if strings.HasPrefix(e.Type, "ticket.") {
			out = append(out, e.ID)
		}
	}
	return out
}

// TestEventLookup: a tenant lists its events newest first (by type, by
// time, in pages) and reads one with each delivery it made and its status.
func TestEventLookup(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{}})
	ok, failing, filtered := receiver(t), receiver(t), receiver(t)
	failing.Respond(func(int, *http.Request) int { return http.StatusInternalServerError })
	subOK := subscribe(t, env, ten, ok, "ticket.*")
	subFail := subscribe(t, env, ten, failing, "ticket.updated")
	if _, err := env.SubscribeWith(ten, map[string]any{"url": filtered.URL(), "eventTypes": []string{"*"}, "filter": `data.ticketId == "nope"`}); err != nil {
		t.Fatal(err)
	}
	types := []string{"ticket.created", "ticket.updated", "ticket.updated", "ticket.deleted", "ticket.updated"}
	var published []string
	for i, typ := range types {
		id, err := env.Publish(ten, typ, map[string]any{"ticketId": fmt.Sprintf("T-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		published = append(published, id)
	}
	newestFirst := func(idx ...int) []string {
		var out []string
		for i := len(idx) - 1; i >= 0; i-- {
			out = append(out, published[idx[i]])
		}
		return out
	}
	var all []eventJSON
	for _, e := range listEvents(t, env, ten, "limit=2") {
		if strings.HasPrefix(e.Type, "ticket.") {
			all = append(all, e)
		}
	}
	if diff := cmp.Diff(newestFirst(0, 1, 2, 3, 4), ids(all)); diff != "" {
		t.Errorf("all events in pages of 2, newest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(newestFirst(1, 2, 4), ids(listEvents(t, env, ten, "type=ticket.updated&limit=1"))); diff != "" {
		t.Errorf("ticket.updated events (-want +got):\n%s", diff)
	}
	from, to := all[3].OccurredAt, all[1].OccurredAt // events 1 to 3
	q := "since=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(to.Format(time.RFC3339Nano))
	got := ids(listEvents(t, env, ten, q))
	if diff := cmp.Diff(newestFirst(1, 2, 3), got); diff != "" {
		t.Errorf("events from %v to %v (-want +got):\n%s", from, to, diff)
	}
	other, _ := env.CreateTenant("other", 0)
	if got := listEvents(t, env, other, "limit=10"); len(got) != 0 {
		t.Errorf("another tenant lists %v", ids(got))
	}

	// One event: its data and a delivery per matching subscription, with
	// the status each came to; the filtered-out subscription made none.
	target := published[2]
	var e eventJSON
	untilCounted(t, "both deliveries of the event settled", func() bool {
		r, err := env.Do("GET", "/api/events/"+target, ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			t.Fatalf("GET event = %v %v", r, err)
		}
		e = eventJSON{}
		r.JSON(&e)
		settled := 0
		for _, d := range e.Deliveries {
			if d.Status == "succeeded" || d.Status == "failed" {
				settled++
			}
		}
		return len(e.Deliveries) == 2 && settled == 2
	})
	if e.ID != target || e.Type != "ticket.updated" || e.Data["ticketId"] != "T-2" {
		t.Errorf("event = %+v, want ticket.updated T-2", e)
	}
	status := map[string]string{}
	for _, d := range e.Deliveries {
		status[d.SubscriptionID] = d.Status
		if d.EventID != target || len(d.Attempts) != 1 {
			t.Errorf("delivery %+v, want one attempt of %s", d, target)
		}
	}
	if diff := cmp.Diff(map[string]string{subOK.ID: "succeeded", subFail.ID: "failed"}, status); diff != "" {
		t.Errorf("deliveries of the event by subscription (-want +got):\n%s", diff)
	}
	if got := filtered.Count(); got != 0 {
		t.Errorf("the filtered-out subscription got %d webhooks", got)
	}

	foreign, _ := env.Do("GET", "/api/events/"+target, other.APIKey, nil)
	unknown, _ := env.Do("GET", "/api/events/evt_nope", other.APIKey, nil)
	if foreign.Status != 404 || string(foreign.Body) != string(unknown.Body) {
		t.Errorf("another tenant's event = %d %s, unknown = %s; want the same 404", foreign.Status, foreign.Body, unknown.Body)
	}
	for _, q := range []string{"limit=0", "limit=101", "since=yesterday", "until=2026-13-01T00:00:00Z", "type=Not+A+Type", "cursor=garbage",
		"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		if r, _ := env.Do("GET", "/api/events?"+q, ten.APIKey, nil); r.Status != 400 {
			t.Errorf("GET /api/events?%s = %d, want 400", q, r.Status)
		}
	}
}

// waitJob polls a job until done (or failed) and returns it.
func waitJob(t *testing.T, env *testenv.Env, ten testenv.Tenant, id string, limit time.Duration) jobJSON {
	t.Helper()
	var j jobJSON
	poll.Until(t, limit, "job "+id+" finished", func() bool {
		r, err := env.Do("GET", "/api/jobs/"+id, ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			t.Fatalf("GET job = %v %v", r, err)
		}
		r.JSON(&j)
		return j.Status != jobs.StatusRunning
	})
	return j
}

// TestReplayJob: a replay of more than a page runs as a job, delivers
// again exactly the events of the subscription's types that its filter
// accepts, and reports what it did; a range older than retention is
// refused.
func TestReplayJob(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, err := env.CreateTenant("replay", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	s, err := env.SubscribeWith(ten, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.updated"}, "filter": `data.n % 5 != 0`})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Second)
	publishBatches(t, env, ten, 300) // data.n = 0..299
	env.Publish(ten, "ticket.created", map[string]any{"n": 1})
	const want = 240 // n % 5 != 0
	if got := len(rc.WaitFor(want, 30*time.Second)); got != want {
		t.Fatalf("first delivery: %d webhooks, want %d", got, want)
	}
	r, _ := env.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, map[string]any{"since": start.Format(time.RFC3339Nano)})
	var started struct{ JobID string }
	r.JSON(&started)
	if r.Status != 202 || !strings.HasPrefix(started.JobID, "job_") || r.Header.Get("Location") != "/api/jobs/"+started.JobID {
		t.Fatalf("replay of 300 events = %d %s (Location %q), want 202 with a job", r.Status, r.Body, r.Header.Get("Location"))
	}
	j := waitJob(t, env, ten, started.JobID, 60*time.Second)
	if j.Status != "done" || j.Kind != "replay" || j.Sent != want || j.Filtered != 60 || j.Total != 300 || j.SubscriptionID != s.ID {
		t.Errorf("replay job = %+v, want done with %d sent and 60 filtered of 300", j, want)
	}
	got := rc.WaitFor(2*want, 30*time.Second)
	seen := map[string]int{}
	for _, w := range got {
		seen[w.ID]++
	}
	for id, n := range seen {
		if n != 2 {
			t.Errorf("event %s arrived %d times, want twice (delivered, then replayed)", id, n)
		}
	}
	if len(got) != 2*want || len(seen) != want {
		t.Errorf("%d webhooks of %d events after the replay, want %d of %d", len(got), len(seen), 2*want, want)
	}

	other, _ := env.CreateTenant("other", 0)
	if r, _ := env.Do("GET", "/api/jobs/"+started.JobID, other.APIKey, nil); r.Status != 404 {
		t.Errorf("another tenant's job = %d, want 404", r.Status)
	}
	old := time.Now().Add(-15 * 24 * time.Hour).Format(time.RFC3339)
	if r, _ := env.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, map[string]any{"since": old}); r.Status != 400 || !strings.Contains(string(r.Body), "retention") {
		t.Errorf("replay from before the retention = %d %s, want 400 naming the retention", r.Status, r.Body)
	}
	if r, _ := env.Do("POST", "/api/subscriptions/"+s.ID+"/recover", ten.APIKey, map[string]any{"since": start, "status": "succeeded"}); r.Status != 400 {
		t.Errorf("recover of succeeded deliveries = %d, want 400", r.Status)
	}
}

// countDeliveries counts a subscription's deliveries with a status, page
// by page.
func countDeliveries(t *testing.T, env *testenv.Env, ten testenv.Tenant, sub, status string) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		r, err := env.Do("GET", "/api/subscriptions/"+sub+"/deliveries?status="+status+"&limit=100&cursor="+cursor, ten.APIKey, nil)
		if err != nil || r.Status != 200 {
			t.Fatalf("list deliveries: %v %v", r, err)
		}
		var page struct {
			Data       []deliveryJSON
			NextCursor string
		}
		r.JSON(&page)
		n += len(page.Data)
		if page.NextCursor == "" {
			return n
		}
		cursor = page.NextCursor
	}
}

// TestRecoverFailedDeliveries: 5,000 deliveries fail, among 200 that
// succeed; once the endpoint is fixed a recovery resends exactly the
// failed ones, as a job that survives a restart of the stack midway, each
// delivered once more; live deliveries keep flowing during it.
//
// The failures are made through the stack, cheaply: the events arrive
// while the subscription is disabled (skipped deliveries), then a recovery
// of the skipped ones makes one attempt each, which the endpoint fails for
// 5,000 of them. (Giving up 5,000 deliveries of one endpoint through the
// retry schedule records each against the endpoint's health, one
// compare-and-set of one key after another: minutes under -race.)
func TestRecoverFailedDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("15,000 deliveries and a restart")
	}
	t.Parallel()
	const failed, succeeded = 5000, 200
	ctx := context.Background()
	opts := testenv.Options{DataDir: t.TempDir(), Jobs: jobs.Config{Rate: 2000}}
	env, err := testenv.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			env.Close()
		}
	}()
	t0 := time.Now()
	ten, err := env.CreateTenant("recover", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	var fixed atomic.Bool
	rc := receiver(t)
	rc.Respond(func(_ int, r *http.Request) int {
		if fixed.Load() || strings.HasPrefix(r.Header.Get("webhook-id"), "ok-") {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	sub, err := env.SubscribeWith(ten, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "active": false})
	if err != nil {
		t.Fatal(err)
	}
	rc.SetSecrets(sub.Secret)
	start := time.Now().UTC().Add(-time.Second)
	for b := 0; b < (failed+succeeded)/100; b++ {
		evts := make([]map[string]any, 100)
		for i := range evts {
			n := b*100 + i
			id := fmt.Sprintf("bad-%d", n)
			if n%26 == 25 && n/26 < succeeded {
				id = fmt.Sprintf("ok-%d", n)
			}
			evts[i] = map[string]any{"type": "ticket.updated", "id": id, "data": map[string]any{"n": n}}
		}
		if r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts}); err != nil || r.Status != 202 {
			t.Fatalf("publish: %v %v", r, err)
		}
	}
	poll.Until(t, 2*time.Minute, "5,200 skipped deliveries", func() bool {
		return countDeliveries(t, env, ten, sub.ID, "skipped") == failed+succeeded
	})
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+sub.ID, ten.APIKey, map[string]any{"active": true}); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	r, _ := env.Do("POST", "/api/subscriptions/"+sub.ID+"/recover", ten.APIKey, map[string]any{"since": start, "status": "skipped"})
	var started struct{ JobID string }
	if r.JSON(&started); r.Status != 202 || started.JobID == "" {
		t.Fatalf("recover skipped = %d %s, want 202 with a job", r.Status, r.Body)
	}
	if j := waitJob(t, env, ten, started.JobID, 2*time.Minute); j.Status != "done" || j.Sent != failed+succeeded {
		t.Fatalf("recovery of the skipped deliveries = %+v", j)
	}
	poll.Until(t, 2*time.Minute, "5,000 failed deliveries listed", func() bool {
		return countDeliveries(t, env, ten, sub.ID, "failed") == failed
	})
	// And the 200 that succeed: the job is done once each is handed to the
	// dispatcher, not once it is sent, so one of them could otherwise reach
	// the receiver after the snapshot below and count as resent. A
	// succeeded record is written only after the receiver's answer.
	poll.Until(t, 2*time.Minute, "200 succeeded deliveries listed", func() bool {
		return countDeliveries(t, env, ten, sub.ID, "succeeded") == succeeded
	})
	t.Logf("5,000 failed deliveries after %v", time.Since(t0))
	// Delivery is at least once: what the recovery sends is counted from
	// here.
	before := map[string]int{}
	firstPhase := rc.Received()
	for _, w := range firstPhase {
		before[w.ID]++
	}

	fixed.Store(true)
	live := receiver(t)
	subscribe(t, env, ten, live, "board.updated")
	r, _ = env.Do("POST", "/api/subscriptions/"+sub.ID+"/recover", ten.APIKey, map[string]any{"since": start.Format(time.RFC3339Nano), "status": "failed"})
	if r.JSON(&started); r.Status != 202 || started.JobID == "" {
		t.Fatalf("recover = %d %s, want 202 with a job", r.Status, r.Body)
	}

	// Live traffic during the recovery: to another subscription and to the
	// one recovering, each delivered while the job runs. How long the
	// slowest took is logged; the bound is one only a stall reaches.
	sent := map[string]time.Time{}
	var j jobJSON
	poll.Until(t, 60*time.Second, "the job a third done, with live events flowing", func() bool {
		for _, typ := range []string{"board.updated", "ticket.created"} {
			id, err := env.Publish(ten, typ, map[string]any{"live": true})
			if err != nil {
				t.Fatal(err)
			}
			sent[id] = time.Now()
		}
		r, _ := env.Do("GET", "/api/jobs/"+started.JobID, ten.APIKey, nil)
		r.JSON(&j)
		return j.Sent >= failed/3 || j.Status != "running"
	})
	if j.Status != "running" {
		t.Fatalf("the job finished before the restart (%+v): nothing would test resuming; slow its rate", j)
	}
	latency := map[string]time.Duration{}
	poll.Until(t, 60*time.Second, "every live event delivered", func() bool {
		for _, w := range append(live.Received(), rc.Received()...) {
			if at, ok := sent[w.ID]; ok {
				if _, done := latency[w.ID]; !done {
					latency[w.ID] = w.At.Sub(at)
				}
			}
		}
		return len(latency) == len(sent)
	})
	var worst time.Duration
	for _, d := range latency {
		worst = max(worst, d)
	}
	if worst > 30*time.Second {
		t.Errorf("a live delivery during the recovery took %v (of %d live events), want it delivered (bound 30 s)", worst, len(sent))
	}
	t.Logf("%d live events during the recovery, slowest %v; job at %d of %d when the stack stops", len(sent), worst, j.Sent, j.Total)

	// Restart midway, on the same storage.
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	env = testenv.Start(t, opts)
	j = waitJob(t, env, ten, started.JobID, 2*time.Minute)
	if j.Status != "done" || j.Total != failed || j.Sent != failed || j.Kind != "recover" {
		t.Fatalf("recovery job = %+v, want done with %d of %d sent", j, failed, failed)
	}
	t.Logf("recovered across the restart after %v", time.Since(t0))
	want := len(firstPhase) + failed + len(sent)/2 // live events: half went to this receiver
	got := rc.WaitFor(want, 2*time.Minute)
	resent := map[string]int{}
	for _, w := range got[len(firstPhase):] {
		resent[w.ID]++
	}
	wrong := 0
	for n := range failed + succeeded {
		id, want := fmt.Sprintf("bad-%d", n), 1 // failed: resent exactly once
		if before[id] == 0 {
			id, want = fmt.Sprintf("ok-%d", n), 0 // succeeded: never resent
		}
		if resent[id] != want {
			wrong++
			if wrong <= 5 {
				t.Errorf("the recovery sent event %s %d times, want %d", id, resent[id], want)
			}
		}
	}
	if wrong > 0 || len(got) < want {
		t.Fatalf("%d events resent a wrong number of times; %d webhooks after the first attempts, want %d", wrong, len(got)-len(firstPhase), want-len(firstPhase))
	}
	// A recovered delivery: succeeded, at its second attempt (its first
	// was the recovery of its skipped delivery). The receiver holds the
	// webhook before the attempt's answer is written to the log, so the
	// read waits for the delivery to leave pending; a lost record would
	// show as a third attempt, the retry of a second one never logged.
	var e eventJSON
	poll.Within(30*time.Second, func() bool {
		r, _ = env.Do("GET", "/api/events/bad-7", ten.APIKey, nil)
		e = eventJSON{}
		r.JSON(&e)
		return len(e.Deliveries) == 1 && e.Deliveries[0].Status != "pending"
	})
	if len(e.Deliveries) != 1 || e.Deliveries[0].Status != "succeeded" || len(e.Deliveries[0].Attempts) != 2 {
		t.Errorf("event bad-7 after recovery = %s, want one delivery, succeeded at its second attempt", r.Body)
	}
}
