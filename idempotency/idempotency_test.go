package idempotency

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/natstest"
)

func TestBeginRules(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	st, err := Open(context.Background(), js, Config{Wait: 50 * time.Millisecond, StaleAfter: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, claim, err := st.Begin(ctx, "ten_a", "k", "fp1")
	if err != nil || claim == nil {
		t.Fatalf("first Begin = %v, %v; want a claim", claim, err)
	}
	if _, _, err := st.Begin(ctx, "ten_a", "k", "fp1"); !errors.Is(err, ErrInProgress) {
		t.Errorf("duplicate while running = %v, want ErrInProgress", err)
	}
	if _, _, err := st.Begin(ctx, "ten_a", "k", "fp2"); !errors.Is(err, ErrMismatch) {
		t.Errorf("other request under the key = %v, want ErrMismatch", err)
	}
	if _, c, err := st.Begin(ctx, "ten_b", "k", "fp2"); err != nil || c == nil {
		t.Errorf("same key in another scope = %v, %v; want its own claim", c, err)
	}
	now.Add(int64(2 * time.Minute)) // the first request's process died
	_, taken, err := st.Begin(ctx, "ten_a", "k", "fp1")
	if err != nil || taken == nil {
		t.Fatalf("Begin after the claim went stale = %v, %v; want a claim", taken, err)
	}
	if err := claim.Finish(ctx, Answer{Status: 201}); err == nil {
		t.Error("the stale claim could still finish after it was taken over")
	}
	if err := taken.Finish(ctx, Answer{Status: 201, Body: []byte(`{"id":"sub_1"}`)}); err != nil {
		t.Fatal(err)
	}
	ans, c, err := st.Begin(ctx, "ten_a", "k", "fp1")
	if err != nil || c != nil || ans == nil || ans.Status != 201 || string(ans.Body) != `{"id":"sub_1"}` {
		t.Errorf("repeat after Finish = %+v, %v, %v; want the stored answer", ans, c, err)
	}

	_, c2, _ := st.Begin(ctx, "ten_a", "k2", "fp")
	if err := c2.Abandon(ctx); err != nil {
		t.Fatal(err)
	}
	if _, again, err := st.Begin(ctx, "ten_a", "k2", "fp"); err != nil || again == nil {
		t.Errorf("Begin after Abandon = %v, %v; want a new claim", again, err)
	}
}
