package opevents

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/subscriptions"
)

func TestNear(t *testing.T) {
	tests := []struct {
		max, used int64
		want      bool
	}{
		{100, 79, false}, {100, 80, true}, {100, 100, true}, {5, 3, false}, {5, 4, true},
		{1, 0, false}, {1, 1, true}, {0, 0, false}, {2, 1, false}, {2, 2, true},
	}
	for _, tt := range tests {
		if got := Near(tt.max, tt.used); got != tt.want {
			t.Errorf("Near(%d, %d) = %v, want %v", tt.max, tt.used, got, tt.want)
		}
	}
}

// TestLimitEventID: the same on every replica within the hour, another
// the next hour or for another limit or type; always a valid event id.
func TestLimitEventID(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 59, 59, 0, time.UTC)
	a := LimitEventID(events.TypeLimitExceeded, "subscriptions", at)
	for _, other := range []string{
		LimitEventID(events.TypeLimitExceeded, "subscriptions", at.Add(time.Second)),
		LimitEventID(events.TypeLimitNear, "subscriptions", at),
		LimitEventID(events.TypeLimitExceeded, "requestsPerMinute", at),
	} {
		if other == a {
			t.Errorf("LimitEventID gave %q twice", a)
		}
	}
	if b := LimitEventID(events.TypeLimitExceeded, "subscriptions", at.Add(-59*time.Minute)); b != a {
		t.Errorf("LimitEventID within one hour = %q and %q, want one id", a, b)
	}
	for _, id := range []string{a, LimitEventID(events.TypeLimitNear, "requestsPerMinute", at)} {
		if !events.ValidID(id) {
			t.Errorf("LimitEventID = %q, not a valid event id", id)
		}
	}
}

// TestFirstOncePerHour: a limit event is raised once an hour per tenant
// and limit by a replica.
func TestFirstOncePerHour(t *testing.T) {
	e := &Emitter{once: map[string]struct{}{}}
	t0 := time.Date(2026, 12, 3, 9, 10, 0, 0, time.UTC)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"ten_a.x", 0, true},
		{"ten_a.x", time.Minute, false},
		{"ten_b.x", time.Minute, true},
		{"ten_a.y", 2 * time.Minute, true},
		{"ten_a.x", 49 * time.Minute, false},
		{"ten_a.x", 50 * time.Minute, true}, // 10:00
		{"ten_a.x", 51 * time.Minute, false},
	}
	for i, s := range steps {
		if got := e.first(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: first(%q, +%v) = %v, want %v", i, s.key, s.at, got, s.want)
		}
	}
}

// TestMsgsCopyToOperator: an event goes to its tenant and a copy, its
// tenant named in the data, to the operator; the operator's own events
// are not copied; each message carries its tenant-scoped id; one log line
// per event.
func TestMsgsCopyToOperator(t *testing.T) {
	var log bytes.Buffer
	e := &Emitter{cfg: Config{Operator: "ten_operator"}.withDefaults(), logger: slog.New(slog.NewJSONHandler(&log, nil))}
	e.raised, e.drops = newCounters()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	ev := Failing(Endpoint{Tenant: "ten_a", Subscription: "sub_1", URL: "https://example.com/h"},
		subscriptions.Health{Failures: 5, FirstFailure: now, FailingAt: now.Add(time.Minute), FailingEvent: "evt_1"}, "endpoint answered 500", 500)
	msgs := e.Msgs(ev)
	if len(msgs) != 2 {
		t.Fatalf("Msgs = %d messages, want the tenant's and the operator's", len(msgs))
	}
	for i, want := range []struct{ subject, msgID string }{
		{events.Subject("ten_a", events.TypeSubscriptionFailing), "ten_a:evt_1"},
		{events.Subject("ten_operator", events.TypeSubscriptionFailing), "ten_operator:evt_1"},
	} {
		if msgs[i].Subject != want.subject || msgs[i].Header.Get(nats.MsgIdHdr) != want.msgID {
			t.Errorf("message %d on %s with id %q, want %s with %q", i, msgs[i].Subject, msgs[i].Header.Get(nats.MsgIdHdr), want.subject, want.msgID)
		}
	}
	var body struct {
		TenantID string `json:"tenantId"`
		Data     struct {
			TenantID string `json:"tenantId"`
			Failures int    `json:"failures"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msgs[1].Data, &body); err != nil {
		t.Fatal(err)
	}
	if body.TenantID != "ten_operator" || body.Data.TenantID != "ten_a" || body.Data.Failures != 5 {
		t.Errorf("operator's copy = %s, want the operator's envelope with data naming ten_a", msgs[1].Data)
	}
	if n := strings.Count(log.String(), "\n"); n != 1 || !strings.Contains(log.String(), `"subscription":"sub_1"`) || !strings.Contains(log.String(), `"level":"WARN"`) {
		t.Errorf("log = %s, want one WARN line naming the subscription", log.String())
	}
	own := ev
	own.TenantID = "ten_operator"
	if got := e.Msgs(own); len(got) != 1 {
		t.Errorf("the operator's own event = %d messages, want 1", len(got))
	}
	var none *Emitter
	if got := none.Msgs(ev); len(got) != 1 {
		t.Errorf("nil Emitter: %d messages, want the tenant's", len(got))
	}
}

// TestEventIDsStable: the events two replicas may both raise carry ids
// made of what they are about.
func TestEventIDsStable(t *testing.T) {
	h := subscriptions.Health{FailingEvent: events.NewID()}
	ep := Endpoint{Tenant: "ten_a", Subscription: "sub_1"}
	a, b := Recovered(ep, h, time.Now()), Recovered(ep, h, time.Now().Add(time.Second))
	if a.ID != b.ID || !events.ValidID(a.ID) {
		t.Errorf("Recovered ids %q and %q, want one valid id", a.ID, b.ID)
	}
	j := jobs.Job{ID: jobs.NewID(), TenantID: "ten_a", Kind: jobs.KindReplay, Status: jobs.StatusDone}
	if x, y := JobFinished(j), JobFinished(j); x.ID != y.ID || !events.ValidID(x.ID) {
		t.Errorf("JobFinished ids %q and %q, want one valid id", x.ID, y.ID)
	}
}
