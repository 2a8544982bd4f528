package deliverylog

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMerge(t *testing.T) {
	t0 := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	next := t0.Add(time.Minute)
	attempt := func(n, code int) *Attempt {
		return &Attempt{N: n, At: t0.Add(time.Duration(n) * time.Second), StatusCode: code, DurationMs: int64(n)}
	}
	rec := func(status string, a *Attempt, next *time.Time) Record {
		return Record{
			DeliveryID: testDlv, TenantID: testTenant, SubscriptionID: testSub,
			EventID: "evt_1", EventType: "ticket.updated", EventSeq: 7, CreatedAt: t0,
			Status: status, Attempt: a, NextAttemptAt: next,
		}
	}
	dlv := func(status string, next *time.Time, as ...*Attempt) Delivery {
		d := Delivery{
			ID: testDlv, TenantID: testTenant, SubscriptionID: testSub,
			EventID: "evt_1", EventType: "ticket.updated", EventSeq: 7, CreatedAt: t0,
			Status: status, Attempts: []Attempt{}, NextAttemptAt: next,
		}
		for _, a := range as {
			d.Attempts = append(d.Attempts, *a)
		}
		return d
	}
	tests := []struct {
		name        string
		have        *Delivery // nil: unknown delivery
		rec         Record
		want        Delivery
		wantChanged bool
	}{
		{
			name: "unknown delivery is created from its first attempt",
			rec:  rec(StatusSucceeded, attempt(1, 200), nil),
			want: dlv(StatusSucceeded, nil, attempt(1, 200)), wantChanged: true,
		},
		{
			name: "unknown delivery is created skipped",
			rec:  rec(StatusSkipped, nil, nil),
			want: dlv(StatusSkipped, nil), wantChanged: true,
		},
		{
			name: "a delivery parked before its first attempt is created pending",
			rec:  rec(StatusPending, nil, nil),
			want: dlv(StatusPending, nil), wantChanged: true,
		},
		{
			name: "a parked delivery's waiting record stored after its first attempt changes nothing",
			have: ptr(dlv(StatusSucceeded, nil, attempt(1, 200))),
			rec:  rec(StatusPending, nil, nil),
			want: dlv(StatusSucceeded, nil, attempt(1, 200)),
		},
		{
			name: "a parked delivery's waiting record never revives a skipped one",
			have: ptr(dlv(StatusSkipped, nil)),
			rec:  rec(StatusPending, nil, nil),
			want: dlv(StatusSkipped, nil),
		},
		{
			name: "unknown delivery first seen at a later attempt",
			rec:  rec(StatusFailed, attempt(3, 500), nil),
			want: dlv(StatusFailed, nil, attempt(3, 500)), wantChanged: true,
		},
		{
			name: "next attempt is appended, status and schedule follow",
			have: ptr(dlv(StatusPending, &next, attempt(1, 503))),
			rec:  rec(StatusSucceeded, attempt(2, 200), nil),
			want: dlv(StatusSucceeded, nil, attempt(1, 503), attempt(2, 200)), wantChanged: true,
		},
		{
			name: "failed attempt schedules a retry",
			have: ptr(dlv(StatusPending, nil)),
			rec:  rec(StatusPending, attempt(1, 503), &next),
			want: dlv(StatusPending, &next, attempt(1, 503)), wantChanged: true,
		},
		{
			name: "the same attempt again is a repeat",
			have: ptr(dlv(StatusSucceeded, nil, attempt(1, 200))),
			rec:  rec(StatusSucceeded, attempt(1, 200), nil),
			want: dlv(StatusSucceeded, nil, attempt(1, 200)),
		},
		{
			name: "an older attempt after a newer one is a repeat",
			have: ptr(dlv(StatusFailed, nil, attempt(1, 500), attempt(2, 500))),
			rec:  rec(StatusPending, attempt(1, 500), &next),
			want: dlv(StatusFailed, nil, attempt(1, 500), attempt(2, 500)),
		},
		{
			name: "a gap in attempt numbers is kept",
			have: ptr(dlv(StatusPending, &next, attempt(1, 500))),
			rec:  rec(StatusFailed, attempt(5, 500), nil),
			want: dlv(StatusFailed, nil, attempt(1, 500), attempt(5, 500)), wantChanged: true,
		},
		{
			name: "skipped never downgrades a delivery with attempts",
			have: ptr(dlv(StatusFailed, nil, attempt(1, 500))),
			rec:  rec(StatusSkipped, nil, nil),
			want: dlv(StatusFailed, nil, attempt(1, 500)),
		},
		{
			name: "skipped replaces a pending delivery without attempts",
			have: ptr(dlv(StatusPending, &next)),
			rec:  rec(StatusSkipped, nil, nil),
			want: dlv(StatusSkipped, nil), wantChanged: true,
		},
		{
			name: "manual retry requested: pending again, attempts kept",
			have: ptr(dlv(StatusFailed, nil, attempt(1, 500), attempt(2, 500))),
			rec:  func() Record { r := rec(StatusPending, nil, &next); r.Manual = true; return r }(),
			want: dlv(StatusPending, &next, attempt(1, 500), attempt(2, 500)), wantChanged: true,
		},
		{
			name: "manual attempt after the request",
			have: ptr(dlv(StatusPending, &next, attempt(1, 500), attempt(2, 500))),
			rec:  func() Record { r := rec(StatusSucceeded, attempt(3, 200), nil); r.Manual = true; return r }(),
			want: dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 500), attempt(3, 200)), wantChanged: true,
		},
		{
			name: "a late older attempt is kept in its place, the newest keeps the status",
			have: ptr(dlv(StatusSucceeded, nil, attempt(2, 200))),
			rec:  rec(StatusPending, attempt(1, 503), &next),
			want: dlv(StatusSucceeded, nil, attempt(1, 503), attempt(2, 200)), wantChanged: true,
		},
		{
			name: "a late attempt between two kept ones",
			have: ptr(dlv(StatusFailed, nil, attempt(1, 500), attempt(3, 500))),
			rec:  rec(StatusPending, attempt(2, 500), &next),
			want: dlv(StatusFailed, nil, attempt(1, 500), attempt(2, 500), attempt(3, 500)), wantChanged: true,
		},
		{
			name: "a manual retry requested before the newest attempt does not make it pending again",
			have: ptr(dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 200))),
			rec: func() Record {
				r := rec(StatusPending, nil, ptr(t0.Add(1500*time.Millisecond)))
				r.Manual = true
				return r
			}(),
			want: dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 200)),
		},
		{
			name: "a manual attempt whose number a scheduled one took comes after it",
			have: ptr(dlv(StatusFailed, nil, attempt(1, 500), attempt(2, 500))),
			rec: func() Record {
				r := rec(StatusSucceeded, &Attempt{N: 2, At: t0.Add(3 * time.Second), StatusCode: 200, DurationMs: 3}, nil)
				r.Manual = true
				return r
			}(),
			want: dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 500), attempt(3, 200)), wantChanged: true,
		},
		{
			name: "a manual attempt again is a repeat, under its own number or the one it was given",
			have: ptr(dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 500), attempt(3, 200))),
			rec: func() Record {
				r := rec(StatusSucceeded, &Attempt{N: 2, At: t0.Add(3 * time.Second), StatusCode: 200, DurationMs: 3}, nil)
				r.Manual = true
				return r
			}(),
			want: dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 500), attempt(3, 200)),
		},
		{
			name: "the same status and schedule change nothing",
			have: ptr(dlv(StatusPending, &next, attempt(1, 500))),
			rec:  rec(StatusPending, nil, ptr(next.In(time.FixedZone("X", 7200)))),
			want: dlv(StatusPending, &next, attempt(1, 500)),
		},
		{
			name: "a later record does not change what the creation set",
			have: ptr(dlv(StatusPending, &next, attempt(1, 500))),
			rec: func() Record {
				r := rec(StatusSucceeded, attempt(2, 200), nil)
				r.EventType, r.EventSeq, r.CreatedAt = "other.type", 99, t0.Add(time.Hour)
				return r
			}(),
			want: dlv(StatusSucceeded, nil, attempt(1, 500), attempt(2, 200)), wantChanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Delivery
			if tt.have != nil {
				d = *tt.have
				d.Attempts = append([]Attempt{}, d.Attempts...)
			}
			r := tt.rec
			changed := merge(&d, tt.have != nil, &r)
			if changed != tt.wantChanged {
				t.Errorf("merge changed = %v, want %v", changed, tt.wantChanged)
			}
			if diff := cmp.Diff(tt.want, d); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBoundAttempts(t *testing.T) {
	tests := []struct {
		n, wantLen, wantStripped int
	}{
		{n: 8, wantLen: 8},
		{n: maxDetailedAttempts, wantLen: maxDetailedAttempts},
		{n: maxDetailedAttempts + 5, wantLen: maxDetailedAttempts + 5, wantStripped: 5},
		{n: maxAttempts + 3, wantLen: maxAttempts, wantStripped: maxAttempts - maxDetailedAttempts},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			var as []Attempt
			for i := 1; i <= tt.n; i++ {
				as = append(as, Attempt{N: i, Error: "e", ResponseBody: "b"})
			}
			got := boundAttempts(as)
			if len(got) != tt.wantLen {
				t.Fatalf("boundAttempts(%d) kept %d, want %d", tt.n, len(got), tt.wantLen)
			}
			if last := got[len(got)-1].N; last != tt.n {
				t.Errorf("newest kept attempt = %d, want %d", last, tt.n)
			}
			stripped := 0
			for _, a := range got {
				if a.Error == "" {
					stripped++
				}
			}
			if stripped != tt.wantStripped {
				t.Errorf("boundAttempts(%d) stripped %d, want %d", tt.n, stripped, tt.wantStripped)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
