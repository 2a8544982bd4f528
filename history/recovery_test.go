package history

import (
	"testing"
	"time"

	"github.com/onestack/webhooks/subscriptions"
)

// TestRecoveryBound checks the range a replay or recovery may cover: it
// starts within retention, and a future or open end is now.
func TestRecoveryBound(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := NewRecovery(RecoveryConfig{EventRetention: 14 * 24 * time.Hour, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         time.Time
		invalid      bool
	}{
		{name: "open end is now", since: now.Add(-time.Hour), want: now},
		{name: "future end is now", since: now.Add(-time.Hour), until: now.Add(time.Hour), want: now},
		{name: "past end kept", since: now.Add(-2 * time.Hour), until: now.Add(-time.Hour), want: now.Add(-time.Hour)},
		{name: "oldest kept is allowed", since: now.Add(-14 * 24 * time.Hour), want: now},
		{name: "past retention", since: now.Add(-14*24*time.Hour - time.Second), invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.bound(tc.since, tc.until, r.eventRetention, "event")
			if tc.invalid {
				ve, ok := err.(*subscriptions.ValidationError)
				if !ok || len(ve.Fields) != 1 || ve.Fields[0].Field != "since" {
					t.Fatalf("bound = %v, %v; want a validation error on since", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("bound = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
