package subscriptions

import (
	"context"
	"strings"
	"testing"
	"time"
)

// fiveDays is the period webhookd disables a failing endpoint after by
// default (--disable-after-failing).
const fiveDays = 5 * 24 * time.Hour

// TestHealthPolicyDisables: the rule, as time steps from the creation of
// the first delivery of a run of failures.
func TestHealthPolicyDisables(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		p       HealthPolicy
		givenUp int
		failing time.Duration // from since to the delivery given up now
		want    bool
	}{
		{"5 days: just given up", HealthPolicy{Period: fiveDays}, 1, 28 * time.Hour, false},
		{"5 days: a second short", HealthPolicy{Period: fiveDays}, 40, fiveDays - time.Second, false},
		{"5 days: at 5 days", HealthPolicy{Period: fiveDays}, 2, fiveDays, true},
		{"5 days: past 5 days", HealthPolicy{Period: fiveDays}, 2, 9 * 24 * time.Hour, true},
		{"5 days: many given up, not 5 days", HealthPolicy{Period: fiveDays}, 10_000, time.Hour, false},
		{"never by time (negative)", HealthPolicy{Period: -1}, 5, 30 * 24 * time.Hour, false},
		{"never by time (zero)", HealthPolicy{}, 5, 30 * 24 * time.Hour, false},
		{"by count: one short", HealthPolicy{GivenUp: 3}, 2, 30 * 24 * time.Hour, false},
		{"by count: reached", HealthPolicy{GivenUp: 3}, 3, time.Minute, true},
		{"both: count first", HealthPolicy{GivenUp: 3, Period: fiveDays}, 3, time.Hour, true},
		{"both: time first", HealthPolicy{GivenUp: 3, Period: fiveDays}, 2, fiveDays, true},
		{"both: neither", HealthPolicy{GivenUp: 3, Period: fiveDays}, 2, fiveDays - time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Health{GivenUp: tt.givenUp, FailingSince: since}
			if got := tt.p.disables(h, since.Add(tt.failing)); got != tt.want {
				t.Errorf("%+v.disables(%d given up, failing %v) = %v, want %v", tt.p, tt.givenUp, tt.failing, got, tt.want)
			}
		})
	}
}

// TestEndpointDisabledAfterFiveDaysFailing: deliveries given up, with none
// succeeding, for 5 days since the first of them was created disable the
// subscription with a reason; a success starts the count again, and so
// does re-enabling it.
func TestEndpointDisabledAfterFiveDaysFailing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, startJetStream(t))
	ten, _, _, err := st.CreateTenant(ctx, TenantInput{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := st.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	p := HealthPolicy{Period: fiveDays}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	givenUp := func(created, now time.Duration, want bool) {
		t.Helper()
		disabled, err := st.RecordGivenUp(ctx, ten.ID, sub.ID, t0.Add(created), t0.Add(now), p)
		if err != nil || disabled != want {
			t.Fatalf("RecordGivenUp(created t0+%v, now t0+%v) = %v, %v; want %v", created, now, disabled, err, want)
		}
	}
	active := func(want bool) Subscription {
		t.Helper()
		got, err := st.LoadSubscription(ctx, ten.ID, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Active != want || (got.DisabledReason != "") == want {
			t.Fatalf("subscription active %v, disabledReason %q; want active %v", got.Active, got.DisabledReason, want)
		}
		return got
	}

	// A run of failures cut by a success: 5 days after its first delivery
	// the endpoint has been failing for only 2.
	givenUp(0, 28*time.Hour, false)
	if err := st.RecordSuccess(ctx, ten.ID, sub.ID); err != nil {
		t.Fatal(err)
	}
	givenUp(3*24*time.Hour, fiveDays, false)
	active(true)

	// The run that started at t0+3d reaches 5 days.
	givenUp(4*24*time.Hour, 8*24*time.Hour-time.Second, false)
	active(true)
	givenUp(6*24*time.Hour, 8*24*time.Hour, true)
	got := active(false)
	if want := "failing since " + t0.Add(3*24*time.Hour).Format(time.RFC3339); !strings.Contains(got.DisabledReason, want) {
		t.Errorf("disabledReason %q, want it to say %q", got.DisabledReason, want)
	}
	givenUp(7*24*time.Hour, 9*24*time.Hour, false) // already disabled: not again

	// Re-enabled, the endpoint starts with a clean record.
	on := true
	if _, err := st.UpdateSubscription(ctx, ten.ID, sub.ID, nil, PatchInput{Active: &on}.Apply); err != nil {
		t.Fatal(err)
	}
	active(true)
	givenUp(10*24*time.Hour, 11*24*time.Hour+time.Hour, false)
	active(true)
}
