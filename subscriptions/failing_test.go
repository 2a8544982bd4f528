package subscriptions

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/poll"
)

// TestFailingPolicyNext: the run of failed attempts, as steps: an endpoint
// is failing at the After-th failure in a row, once; a success ends the
// run, and is a recovery only after the endpoint was found failing.
func TestFailingPolicyNext(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	f, ok := step{true, Unchanged}, step{false, Unchanged}
	tests := []struct {
		name  string
		p     FailingPolicy
		steps []step
		// failures is the count of the run at the end.
		failures int
	}{
		{"healthy", FailingPolicy{After: 3}, []step{ok, ok}, 0},
		{"two short", FailingPolicy{After: 3}, []step{f, f}, 2},
		{"reached at the third", FailingPolicy{After: 3}, []step{f, f, {true, NowFailing}}, 3},
		{"once per run", FailingPolicy{After: 3}, []step{f, f, {true, NowFailing}, f, f, f, f}, 3},
		{"recovered once", FailingPolicy{After: 2}, []step{f, {true, NowFailing}, f, {false, Recovered}, ok}, 0},
		{"a success before the threshold is no recovery", FailingPolicy{After: 3}, []step{f, f, ok, f, f}, 2},
		{"a second run is told again", FailingPolicy{After: 2}, []step{f, {true, NowFailing}, {false, Recovered}, f, {true, NowFailing}}, 2},
		{"after 1", FailingPolicy{After: 1}, []step{{true, NowFailing}, f, {false, Recovered}}, 0},
		{"never (0)", FailingPolicy{}, []step{f, f, f, f, f, f, ok}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Health
			for i, s := range tt.steps {
				at := t0.Add(time.Duration(i) * time.Minute)
				var got Change
				h, got = tt.p.next(h, s.failed, at)
				if got != s.want {
					t.Fatalf("step %d (failed %v): next = %v, want %v", i, s.failed, got, s.want)
				}
				if got == NowFailing && (!h.Failing() || !h.FailingAt.Equal(at)) {
					t.Fatalf("step %d: failing at %v, want %v", i, h.FailingAt, at)
				}
			}
			if h.Failures != tt.failures {
				t.Errorf("failures at the end = %d, want %d", h.Failures, tt.failures)
			}
			if h.Failures > 0 && !h.FirstFailure.Equal(firstFailureOf(tt.steps, t0)) {
				t.Errorf("first failure = %v, want %v", h.FirstFailure, firstFailureOf(tt.steps, t0))
			}
		})
	}
}

// step is one attempt of a table: whether it failed, and the change it
// should make.
type step struct {
	failed bool
	want   Change
}

// firstFailureOf is when the last run of failures of steps began.
func firstFailureOf(steps []step, t0 time.Time) time.Time {
	var at time.Time
	for i, s := range steps {
		switch {
		case !s.failed:
			at = time.Time{}
		case at.IsZero():
			at = t0.Add(time.Duration(i) * time.Minute)
		}
	}
	return at
}

// TestRecordAttemptOnceAcrossStores: two stores on one NATS (two
// replicas) record the failures of one endpoint side by side; exactly one
// attempt of them all reports NowFailing, and of two successes after it
// exactly one reports Recovered, with the failing event's id.
func TestRecordAttemptOnceAcrossStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, ten := twoReplicas(t)
	sub, err := a.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	p := FailingPolicy{After: 5}
	now := time.Now()
	var (
		mu      sync.Mutex
		failing []Health
		wg      sync.WaitGroup
	)
	for i := range 20 {
		st := []*Store{a, b}[i%2]
		wg.Go(func() {
			h, c, err := st.RecordAttempt(ctx, ten.ID, sub.ID, true, now, p)
			if err != nil {
				t.Error(err)
				return
			}
			if c == NowFailing {
				mu.Lock()
				failing = append(failing, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failing) != 1 {
		t.Fatalf("NowFailing reported %d times for 20 failures on two stores, want once", len(failing))
	}
	if failing[0].FailingEvent == "" || failing[0].Failures != 5 {
		t.Fatalf("failing run = %+v, want 5 failures and an event id", failing[0])
	}
	// a's own writes set its copy at once, but its watch may still hand it
	// an older put of the run (its own or b's, from before the run was
	// failing), which holds until the watch catches up: the copy is
	// waited for.
	var h Health
	var ok bool
	if !poll.Within(waitLimit, func() bool { h, ok = a.EndpointHealth(ten.ID, sub.ID); return ok && h.Failing() }) {
		t.Errorf("EndpointHealth on the store = %+v, %v; want failing", h, ok)
	}
	// b learns of the run through its watch, if not by its own write.
	poll.Until(t, waitLimit, "the other store sees the run failing", func() bool { h, ok := b.EndpointHealth(ten.ID, sub.ID); return ok && h.Failing() })
	var recovered []Health
	for _, st := range []*Store{a, b} {
		wg.Go(func() {
			h, c, err := st.RecordAttempt(ctx, ten.ID, sub.ID, false, now, p)
			if err != nil {
				t.Error(err)
				return
			}
			if c == Recovered {
				mu.Lock()
				recovered = append(recovered, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(recovered) != 1 {
		t.Fatalf("Recovered reported %d times for two successes, want once", len(recovered))
	}
	if diff := cmp.Diff(failing[0].FailingEvent, recovered[0].FailingEvent); diff != "" {
		t.Errorf("the recovery's run is not the failing one (-failing +recovered):\n%s", diff)
	}
	// The same: an older put of the run may come through a's watch after
	// its own success removed it, until the removal comes through too.
	if !poll.Within(waitLimit, func() bool { _, ok := a.EndpointHealth(ten.ID, sub.ID); return !ok }) {
		t.Error("a recovered endpoint still has a run of failures")
	}
}
