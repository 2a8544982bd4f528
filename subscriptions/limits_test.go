package subscriptions

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/limits"
)

// TestEventTypesCounted: a tenant's event types are the distinct patterns
// its subscriptions name, each once; a subscription's change counts what
// the others keep naming.
func TestEventTypesCounted(t *testing.T) {
	x := newIndex()
	for i, s := range []*Subscription{
		{ID: "sub_1", TenantID: "t", EventTypes: []string{"ticket.updated", "ticket.*"}},
		{ID: "sub_2", TenantID: "t", EventTypes: []string{"ticket.*", "board.updated"}},
		{ID: "sub_3", TenantID: "u", EventTypes: []string{"*"}},
	} {
		s.Revision = uint64(i + 1)
		x.putSub(s, false)
	}
	if diff := cmp.Diff(Usage{Subscriptions: 2, EventTypes: 3}, x.Usage("t")); diff != "" {
		t.Errorf("Usage(t) (-want +got):\n%s", diff)
	}
	if got := x.Usage("nobody"); got != (Usage{}) {
		t.Errorf("Usage of a tenant without subscriptions = %+v", got)
	}
	for _, tc := range []struct {
		name      string
		sub       string
		types     []string
		now, want int
	}{
		{"new, nothing new", "", []string{"ticket.*"}, 3, 3},
		{"new, one new", "", []string{"ticket.*", "ticket.created"}, 3, 4},
		{"new, repeated", "", []string{"*", "*"}, 3, 4},
		{"change, drops its own only pattern", "sub_1", []string{"ticket.*"}, 3, 2},
		{"change, swaps it", "sub_1", []string{"ticket.created"}, 3, 3},
		{"change, keeps a shared one", "sub_2", []string{"board.updated"}, 3, 3},
		{"change, adds", "sub_2", []string{"ticket.*", "board.updated", "*"}, 3, 4},
		{"another tenant's pattern is new here", "", []string{"*"}, 3, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, after := x.eventTypesWith("t", tc.sub, tc.types)
			if now != tc.now || after != tc.want {
				t.Errorf("eventTypesWith(%q, %v) = %d, %d; want %d, %d", tc.sub, tc.types, now, after, tc.now, tc.want)
			}
		})
	}
}

// TestTenantLimits: a tenant's own limits over the store's defaults, with
// requestsPerMinute as its RateLimit both ways.
func TestTenantLimits(t *testing.T) {
	d := limits.Defaults()
	d.Jobs = 9
	ten := Tenant{RateLimit: 0}
	if diff := cmp.Diff(d, limitsOf(&ten, d)); diff != "" {
		t.Errorf("a tenant without overrides (-want +got):\n%s", diff)
	}
	ten.applyLimits(limits.Patch{RequestsPerMinute: limits.Set(250), Subscriptions: limits.Set(7)})
	if ten.RateLimit != 250 || ten.Limits != (limits.Limits{Subscriptions: 7}) {
		t.Errorf("after a patch: RateLimit %d, Limits %+v; want 250 and subscriptions 7 only", ten.RateLimit, ten.Limits)
	}
	got := limitsOf(&ten, d)
	if got.RequestsPerMinute != 250 || got.Subscriptions != 7 || got.Jobs != 9 {
		t.Errorf("effective = %+v", got)
	}
	ten.applyLimits(limits.Patch{RequestsPerMinute: limits.Reset(), Subscriptions: limits.Reset()})
	if ten.RateLimit != 0 || ten.Limits != (limits.Limits{}) {
		t.Errorf("after resetting: RateLimit %d, Limits %+v; want the defaults", ten.RateLimit, ten.Limits)
	}
}

// TestStoreEnforcesLimits: concurrent creates through one store cannot
// pass the subscriptions limit together; a change of event types past
// the limit is refused and leaves the subscription as stored; the limits
// stored with a tenant survive a reload.
func TestStoreEnforcesLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := startJetStream(t)
	st, err := Open(ctx, js, Config{Limits: limits.Limits{Subscriptions: 3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ten, _, _, err := st.CreateTenant(ctx, TenantInput{Name: "acme", Limits: &limits.Patch{EventTypes: limits.Set(2)}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := st.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created, refused := 0, 0
	for err := range errs {
		var e *limits.ExceededError
		switch {
		case err == nil:
			created++
		case errors.As(err, &e) && e.Limit == limits.Subscriptions && e.Max == 3 && e.Used == 3:
			refused++
		default:
			t.Errorf("CreateSubscription: %v", err)
		}
	}
	if created != 3 || refused != 7 {
		t.Errorf("10 creates at once against a limit of 3: %d created, %d refused", created, refused)
	}

	sub, _ := st.Index().List(ten.ID, "", 1)
	types := []string{"ticket.*", "board.updated", "account.created"}
	_, err = st.UpdateSubscription(ctx, ten.ID, sub[0].ID, nil, PatchInput{EventTypes: &types}.Apply)
	var e *limits.ExceededError
	if !errors.As(err, &e) || e.Limit != limits.EventTypes || e.Used != 1 || e.After != 3 {
		t.Fatalf("UpdateSubscription past eventTypes = %v", err)
	}
	if got, _ := st.LoadSubscription(ctx, ten.ID, sub[0].ID); !slices.Equal(got.EventTypes, []string{"ticket.*"}) {
		t.Errorf("stored after a refused change: %v", got.EventTypes)
	}

	other := openStore(t, js)
	got, err := other.Limits(ctx, ten.ID)
	if err != nil || got.EventTypes != 2 || got.Subscriptions != limits.Defaults().Subscriptions || got.RequestsPerMinute != DefaultRateLimit {
		t.Errorf("Limits read by another store (default config) = %+v, %v", got, err)
	}
}
