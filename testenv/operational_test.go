package testenv_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/syncbuf"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/testenv"
)

// logLines collects the JSON log lines of several stacks.
type logLines struct{ syncbuf.Buffer }

// operational counts the "operational event" lines of type typ.
func (l *logLines) operational(typ string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		var rec struct{ Msg, Type string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "operational event" && rec.Type == typ {
			n++
		}
	}
	return n
}

// opEvent is a webhook's body, as an operational event.
type opEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	TenantID string          `json:"tenantId"`
	Data     json.RawMessage `json:"data"`
	Verified error           `json:"-"`
}

// opEvents decodes what rc received.
func opEvents(t *testing.T, rc *testenv.Receiver) []opEvent {
	t.Helper()
	var out []opEvent
	for _, w := range rc.Received() {
		var e opEvent
		if err := json.Unmarshal(w.Body, &e); err != nil {
			t.Fatalf("webhook body %s: %v", w.Body, err)
		}
		e.Verified = w.Verified
		out = append(out, e)
	}
	return out
}

// ofType keeps the events of type typ.
func ofType(evs []opEvent, typ string) []opEvent {
	var out []opEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// operatorStacks runs two webhookd replicas on one NATS server, both with
// the operator's endpoint op (signed with a fresh secret op verifies) and
// logging into the returned lines.
func operatorStacks(t *testing.T, op *testenv.Receiver, edit func(*server.Config)) (a, b *testenv.Env, logs *logLines) {
	t.Helper()
	ns := natstest.Start(t, natstest.Options{})
	secret := signature.NewSecret().Reveal()
	if err := op.SetSecrets(secret); err != nil {
		t.Fatal(err)
	}
	logs = &logLines{}
	start := func() *testenv.Env {
		return testenv.Start(t, testenv.Options{NATSURL: ns.ClientURL(), Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			Server: func(c *server.Config) {
				c.Operator = server.OperatorConfig{URL: op.URL(), Secret: secret}
				if edit != nil {
					edit(c)
				}
			}})
	}
	return start(), start(), logs
}

// checkOnce checks that each of types reached the tenant's receiver (got)
// and the operator's (op) once each, named the tenant, and was logged
// once by the two replicas together.
func checkOnce(t *testing.T, tenant string, got, op []opEvent, logs *logLines, types ...string) {
	t.Helper()
	for _, typ := range types {
		mine, ops := ofType(got, typ), ofType(op, typ)
		if len(mine) != 1 || len(ops) != 1 {
			t.Errorf("%s reached the tenant %d times and the operator %d times, want once each", typ, len(mine), len(ops))
			continue
		}
		if mine[0].ID != ops[0].ID || mine[0].TenantID != tenant || ops[0].TenantID != subscriptions.OperatorTenant {
			t.Errorf("%s: the tenant's %s of %s, the operator's %s of %s; want one id, under the tenant and the operator's tenant",
				typ, mine[0].ID, mine[0].TenantID, ops[0].ID, ops[0].TenantID)
		}
		var data struct{ TenantID string }
		json.Unmarshal(ops[0].Data, &data)
		if data.TenantID != tenant {
			t.Errorf("%s: the operator's copy names tenant %q in its data, want %s", typ, data.TenantID, tenant)
		}
		if ops[0].Verified != nil {
			t.Errorf("%s: the operator's copy does not verify with the operator's secret: %v", typ, ops[0].Verified)
		}
		if n := logs.operational(typ); n != 1 {
			t.Errorf("%s logged %d times by two replicas, want once", typ, n)
		}
	}
}

// TestOperationalFailingAndRecovered: two replicas deliver to an endpoint
// that fails; once it has failed 3 attempts in a row (--failing-after 3)
// the tenant's other endpoint, subscribed to subscription.*, gets
// subscription.failing, and subscription.recovered once the endpoint
// answers 200 again: each once, though both replicas made attempts, and
// each also reaches the operator's endpoint once, signed, with
// delivery.exhausted for each delivery given up. The subscription shows
// failingSince while it is failing.
func TestOperationalFailingAndRecovered(t *testing.T) {
	t.Parallel()
	op := receiver(t)
	a, b, logs := operatorStacks(t, op, func(c *server.Config) { c.Dispatcher.FailingAfter = 3 })
	ten, err := a.CreateTenant("acme", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	notices := receiver(t)
	subscribe(t, a, ten, notices, "subscription.*")
	bad, failing := failingReceiver(t, http.StatusInternalServerError)
	sub := subscribe(t, b, ten, bad, "ticket.*")
	matchedEverywhere(t, ten, events.TypeSubscriptionFailing, 1, a, b)
	matchedEverywhere(t, ten, "ticket.updated", 1, a, b)
	// Two events, one through each replica, three attempts each: their
	// attempts are spread over both replicas.
	publish(t, a, ten, "ticket.updated")
	publish(t, b, ten, "ticket.updated")
	poll.Until(t, 30*time.Second, "subscription.failing reaches the tenant", func() bool {
		return len(ofType(opEvents(t, notices), events.TypeSubscriptionFailing)) > 0
	})
	var view struct {
		FailingSince *time.Time `json:"failingSince"`
	}
	for _, env := range []*testenv.Env{a, b} {
		poll.Until(t, 30*time.Second, "failingSince on the failing subscription", func() bool {
			r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
			view.FailingSince = nil
			return r.Status == 200 && r.JSON(&view) == nil && view.FailingSince != nil
		})
	}
	// Both deliveries given up: every failed attempt is counted before the
	// endpoint answers again.
	poll.Until(t, 30*time.Second, "both deliveries given up", func() bool {
		return len(ofType(opEvents(t, op), events.TypeDeliveryExhausted)) == 2
	})
	failing.Store(false)
	publish(t, a, ten, "ticket.created")
	poll.Until(t, 30*time.Second, "subscription.failing and .recovered reach the tenant and the operator", func() bool {
		got, ops := opEvents(t, notices), opEvents(t, op)
		return len(ofType(got, events.TypeSubscriptionRecovered)) > 0 && len(ofType(ops, events.TypeSubscriptionRecovered)) > 0 &&
			len(ofType(ops, events.TypeSubscriptionFailing)) > 0
	})
	got := opEvents(t, notices)
	checkOnce(t, ten.ID, got, opEvents(t, op), logs, events.TypeSubscriptionFailing, events.TypeSubscriptionRecovered)
	var f struct {
		SubscriptionID, URL string
		Failures            int
		LastStatusCode      int
	}
	json.Unmarshal(ofType(got, events.TypeSubscriptionFailing)[0].Data, &f)
	if f.SubscriptionID != sub.ID || f.URL != bad.URL() || f.Failures != 3 || f.LastStatusCode != 500 {
		t.Errorf("subscription.failing data = %s, want the subscription, its url, 3 failures and the last status 500",
			ofType(got, events.TypeSubscriptionFailing)[0].Data)
	}
	if n := len(ofType(got, events.TypeDeliveryExhausted)); n != 0 {
		t.Errorf("the tenant's subscription.* endpoint got %d delivery.exhausted, want none", n)
	}
	for _, e := range ofType(opEvents(t, op), events.TypeDeliveryExhausted) {
		if e.Verified != nil || e.TenantID != subscriptions.OperatorTenant || !strings.Contains(string(e.Data), ten.ID) {
			t.Errorf("the operator's delivery.exhausted = %+v, want it signed, naming the tenant", e)
		}
	}
	poll.Until(t, 30*time.Second, "no failingSince once recovered", func() bool {
		r, _ := a.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
		return r.Status == 200 && !strings.Contains(string(r.Body), "failingSince")
	})
}

// TestOperationalLimitEvents: a tenant limited to 2 subscriptions makes
// its second (80 %: limit.near) and is refused a third, three times
// through two replicas (limit.exceeded): each event reaches the tenant's
// endpoint and the operator's once, and is logged once, though the
// events stream's duplicate window is 100 ms.
func TestOperationalLimitEvents(t *testing.T) {
	t.Parallel()
	op := receiver(t)
	// The stream forgets message ids after 100 ms: the once bucket, not
	// the duplicate window, keeps the hour's event one.
	a, b, logs := operatorStacks(t, op, func(c *server.Config) { c.Events.DedupeWindow = 100 * time.Millisecond })
	ten, err := a.CreateTenant("acme", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Do("PATCH", "/admin/tenants/"+ten.ID, a.AdminToken, map[string]any{"limits": map[string]any{"subscriptions": 2}}); r.Status != 200 {
		t.Fatalf("limit subscriptions = %d %s", r.Status, r.Body)
	}
	// Each replica counts the tenant's subscriptions and reads its limits
	// in its own index, which learns of the other's writes through a
	// watch: each create below waits until the replica it goes through
	// has seen the writes before it (else b could count 1 of 2, not
	// near, and a could take a third).
	sees := func(env *testenv.Env, subs int64) {
		t.Helper()
		poll.Until(t, 30*time.Second, "the limit and the subscriptions on each replica", func() bool {
			l := getLimits(t, env, ten)
			return l.Limits["subscriptions"] == 2 && l.Usage["subscriptions"] == subs
		})
	}
	notices := receiver(t)
	subscribe(t, a, ten, notices, "limit.*")
	sees(b, 1)
	subscribe(t, b, ten, receiver(t), "ticket.*")
	sees(a, 2)
	for i, env := range []*testenv.Env{a, b, a} {
		r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": "https://example.com/h", "eventTypes": []string{"ticket.*"}})
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "QUOTA_EXCEEDED") {
			t.Fatalf("create %d past the limit = %d %s, want 403 QUOTA_EXCEEDED", i, r.Status, r.Body)
		}
	}
	poll.Until(t, 30*time.Second, "limit.near and limit.exceeded reach the tenant and the operator", func() bool {
		got, ops := opEvents(t, notices), opEvents(t, op)
		return len(ofType(got, events.TypeLimitNear)) > 0 && len(ofType(got, events.TypeLimitExceeded)) > 0 &&
			len(ofType(ops, events.TypeLimitNear)) > 0 && len(ofType(ops, events.TypeLimitExceeded)) > 0
	})
	got := opEvents(t, notices)
	checkOnce(t, ten.ID, got, opEvents(t, op), logs, events.TypeLimitNear, events.TypeLimitExceeded)
	for _, c := range []struct {
		typ  string
		used int
	}{{events.TypeLimitNear, 2}, {events.TypeLimitExceeded, 2}} {
		var d struct {
			Limit     string
			Max, Used int
		}
		json.Unmarshal(ofType(got, c.typ)[0].Data, &d)
		if d.Limit != "subscriptions" || d.Max != 2 || d.Used != c.used {
			t.Errorf("%s data = %s, want subscriptions, max 2, used %d", c.typ, ofType(got, c.typ)[0].Data, c.used)
		}
	}
}

// TestOperationalJobFinished: a replay of more than a page runs as a job
// on one of two replicas; its end reaches the tenant's job.finished
// endpoint and the operator's once, with its counts.
func TestOperationalJobFinished(t *testing.T) {
	t.Parallel()
	op := receiver(t)
	a, b, logs := operatorStacks(t, op, nil)
	ten, err := a.CreateTenant("acme", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	notices := receiver(t)
	subscribe(t, a, ten, notices, "job.finished")
	rc := receiver(t)
	s := subscribe(t, b, ten, rc, "ticket.updated")
	matchedEverywhere(t, ten, events.TypeJobFinished, 1, a, b)
	matchedEverywhere(t, ten, "ticket.updated", 1, a, b)
	start := time.Now().UTC().Add(-time.Second)
	publishBatches(t, a, ten, 150)
	// At least once: wait for the 150 events, not for 150 requests, which
	// a repeat could make up with an event missing.
	if got := distinctIDs(waitDistinct(rc, 150, 30*time.Second)); got != 150 {
		t.Fatalf("first delivery: %d events, want 150", got)
	}
	r, _ := b.Do("POST", "/api/subscriptions/"+s.ID+"/replay", ten.APIKey, map[string]any{"since": start.Format(time.RFC3339Nano)})
	var started struct{ JobID string }
	r.JSON(&started)
	if r.Status != 202 || started.JobID == "" {
		t.Fatalf("replay of 150 events = %d %s, want 202 with a job", r.Status, r.Body)
	}
	waitJob(t, a, ten, started.JobID, 60*time.Second)
	poll.Until(t, 30*time.Second, "job.finished reaches the tenant and the operator", func() bool {
		return len(opEvents(t, notices)) > 0 && len(ofType(opEvents(t, op), events.TypeJobFinished)) > 0
	})
	got := opEvents(t, notices)
	checkOnce(t, ten.ID, got, opEvents(t, op), logs, events.TypeJobFinished)
	var d struct {
		JobID, Kind, Status, SubscriptionID string
		Sent, Total                         int
	}
	json.Unmarshal(got[0].Data, &d)
	if d.JobID != started.JobID || d.Kind != "replay" || d.Status != "done" || d.Sent != 150 || d.Total != 150 || d.SubscriptionID != s.ID {
		t.Errorf("job.finished data = %s, want %s, a replay done with 150 of 150 sent", got[0].Data, started.JobID)
	}
}

// TestOperatorEndpointChecked: the operator's endpoint is checked as a
// tenant's would be: a url needs a secret, and a strict stack refuses a
// loopback url.
func TestOperatorEndpointChecked(t *testing.T) {
	t.Parallel()
	secret := signature.NewSecret().Reveal()
	for _, c := range []struct {
		name   string
		op     server.OperatorConfig
		strict bool
		want   string
	}{
		{"no secret", server.OperatorConfig{URL: "https://ops.example.com/hooks"}, false, "needs a secret"},
		{"bad secret", server.OperatorConfig{URL: "https://ops.example.com/hooks", Secret: "nope"}, false, "secret"},
		{"loopback on a strict stack", server.OperatorConfig{URL: "http://127.0.0.1:9/hooks", Secret: secret}, true, "url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := testenv.New(t.Context(), testenv.Options{DataDir: t.TempDir(), Strict: c.strict,
				Server: func(cfg *server.Config) { cfg.Operator = c.op }})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "operator webhook") {
				t.Errorf("start with operator %+v = %v, want an operator webhook error about %s", c.op, err, c.want)
			}
		})
	}
}
