package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPastHighWater(t *testing.T) {
	tests := []struct {
		used, max int64
		mark      float64
		want      bool
	}{
		{0, 1000, 0.9, false},
		{900, 1000, 0.9, false}, // at the mark is not past it
		{901, 1000, 0.9, true},
		{1000, 1000, 0.9, true},
		{2000, 1000, 0.9, true},   // a limit lowered under what the stream holds
		{1 << 40, 0, 0.9, false},  // no limit
		{1 << 40, -1, 0.9, false}, // JetStream's "none"
		{1, 1000, 0, true},
		{0, 1000, 0, false},
		{999, 1000, 1, false},
	}
	for _, tt := range tests {
		if got := pastHighWater(tt.used, tt.max, tt.mark); got != tt.want {
			t.Errorf("pastHighWater(%d, %d, %v) = %v, want %v", tt.used, tt.max, tt.mark, got, tt.want)
		}
	}
}

func TestStorageBudget(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name    string
		cfg     StorageConfig
		want    budget
		wantErr bool
	}{
		{"shares of the store", StorageConfig{MaxStore: 100 * gib},
			budget{store: 100 * gib, events: 50 * gib, attemptLog: 20 * gib, deliveries: 10 * gib, idempotency: 4 * gib,
				subscriptions: 2 * gib, small: gib, counters: maxCounterBytes, highWater: 0.9}, false},
		{"flags win", StorageConfig{MaxStore: 100 * gib, EventsMaxBytes: 30 * gib, AttemptLogMaxBytes: 40 * gib, DeliveriesMaxBytes: gib, HighWater: 0.8},
			budget{store: 100 * gib, events: 30 * gib, attemptLog: 40 * gib, deliveries: gib, idempotency: 4 * gib,
				subscriptions: 2 * gib, small: gib, counters: maxCounterBytes, highWater: 0.8}, false},
		{"a small events stream in a test", StorageConfig{MaxStore: 64 << 20, EventsMaxBytes: 256 << 10},
			budget{store: 64 << 20, events: 256 << 10, attemptLog: 671088 * 20, deliveries: 671088 * 10, idempotency: 671088 * 4,
				subscriptions: 671088 * 2, small: 671088, counters: 671088, highWater: 0.9}, false},
		{"limits over the store", StorageConfig{MaxStore: 100 * gib, EventsMaxBytes: 80 * gib}, budget{}, true},
		{"a store too small for the buckets", StorageConfig{MaxStore: 1 << 20}, budget{}, true},
		{"no store", StorageConfig{}, budget{}, true},
		{"a mark past the limit", StorageConfig{MaxStore: gib, HighWater: 1.5}, budget{}, true},
		{"a negative limit", StorageConfig{MaxStore: gib, EventsMaxBytes: -1}, budget{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.budget()
			if (err != nil) != tt.wantErr {
				t.Fatalf("budget() error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(budget{})); diff != "" {
				t.Errorf("budget() (-want +got):\n%s", diff)
			}
			if err == nil && got.sum() > got.store {
				t.Errorf("budget() sums to %d, over the store's %d", got.sum(), got.store)
			}
		})
	}
}

// TestUsageReadsOncePerInterval: the high-water check answers from a
// reading at most ReadEvery old, so JetStream is asked once per interval
// whatever the requests; a failed listing keeps the reading before, until
// the next interval.
func TestUsageReadsOncePerInterval(t *testing.T) {
	now := time.Unix(1000, 0)
	lists := 0
	held := int64(100)
	var fail error
	u := &usage{every: time.Second, mark: 0.9, now: func() time.Time { return now },
		list: func(context.Context) (map[string]streamBytes, error) {
			lists++
			if fail != nil {
				return nil, fail
			}
			return map[string]streamBytes{"EVENTS": {used: held, max: 1000}}, nil
		}}
	steps := []struct {
		advance   time.Duration
		held      int64
		fail      error
		wantNear  bool
		wantLists int
	}{
		{0, 100, nil, false, 1},                         // the first reading
		{500 * time.Millisecond, 950, nil, false, 1},    // within the second: the reading before
		{500 * time.Millisecond, 950, nil, true, 2},     // a second old: read again
		{100 * time.Millisecond, 100, nil, true, 2},     // cached
		{time.Second, 100, errors.New("down"), true, 3}, // a failed listing keeps the last reading
		{time.Millisecond, 100, nil, true, 3},           // and is not asked again at once
		{time.Second, 100, nil, false, 4},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		held, fail = st.held, st.fail
		if got := u.nearLimit(context.Background(), "EVENTS"); got != st.wantNear || lists != st.wantLists {
			t.Errorf("step %d: nearLimit = %v after %d listings, want %v after %d", i, got, lists, st.wantNear, st.wantLists)
		}
	}
	if u.nearLimit(context.Background(), "OTHER") {
		t.Errorf("nearLimit(OTHER) = true for a stream not listed, want false")
	}
}

// TestRememberedMaxStore: the store's default is worked out once and kept,
// so a disk that fills later never shrinks it (a shrunk limit drops a
// stream's oldest messages).
func TestRememberedMaxStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), maxStoreFile)
	free := int64(1000)
	compute := func() (int64, error) { return free, nil }
	if n, err := rememberedMaxStore(path, compute); err != nil || n != 1000 {
		t.Fatalf("first start: rememberedMaxStore = %d, %v; want 1000", n, err)
	}
	free = 10 // the disk filled up
	if n, err := rememberedMaxStore(path, compute); err != nil || n != 1000 {
		t.Errorf("next start: rememberedMaxStore = %d, %v; want the 1000 kept", n, err)
	}
}
