package jobs

import (
	"testing"
	"time"
)

func TestPick(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	job := func(id, tenant string, created time.Duration) Job {
		return Job{ID: id, TenantID: tenant, CreatedAt: t0.Add(created)}
	}
	deferred := func(j Job, until time.Duration) Job {
		j.NotBefore = now.Add(until)
		return j
	}
	tests := []struct {
		name    string
		waiting []Job
		load    load
		want    string // the job's id; "" none
	}{
		{"nothing waits", nil, load{slots: 2}, ""},
		{"no slot free",
			[]Job{job("a1", "ten_a", 0)},
			load{slots: 2, mine: map[string]int{"ten_b": 2}, running: map[string]int{"ten_b": 2}}, ""},
		{"one waits",
			[]Job{job("a1", "ten_a", 0)},
			load{slots: 2}, "a1"},
		{"oldest of a tenant first",
			[]Job{job("a2", "ten_a", 2*time.Minute), job("a1", "ten_a", time.Minute), job("a3", "ten_a", 3*time.Minute)},
			load{slots: 2}, "a1"},
		{"same age: by id",
			[]Job{job("a2", "ten_a", 0), job("a1", "ten_a", 0)},
			load{slots: 2}, "a1"},
		{"fewest running across the cluster first, whatever the age",
			[]Job{job("a1", "ten_a", 0), job("b1", "ten_b", time.Minute)},
			load{slots: 2, running: map[string]int{"ten_a": 2}}, "b1"},
		{"a tenant running nothing before one running one",
			[]Job{job("a1", "ten_a", 0), job("b1", "ten_b", time.Minute), job("c1", "ten_c", 2*time.Minute)},
			load{slots: 4, running: map[string]int{"ten_a": 1, "ten_b": 3}}, "c1"},
		{"equals: round robin after the last tenant",
			[]Job{job("a1", "ten_a", 0), job("b1", "ten_b", time.Minute), job("c1", "ten_c", 2*time.Minute)},
			load{slots: 2, last: "ten_a"}, "b1"},
		{"equals: round robin wraps",
			[]Job{job("a1", "ten_a", 0), job("b1", "ten_b", time.Minute)},
			load{slots: 2, last: "ten_b"}, "a1"},
		{"equals: round robin from a tenant gone",
			[]Job{job("a1", "ten_a", 0), job("c1", "ten_c", time.Minute)},
			load{slots: 2, last: "ten_b"}, "c1"},
		{"equals, first pick: in tenant order",
			[]Job{job("b1", "ten_b", 0), job("a1", "ten_a", time.Minute)},
			load{slots: 2}, "a1"},
		{"a tenant at its share of this runner waits while another's job waits",
			// ten_b runs 3 jobs elsewhere, ten_a 1 here: by the cluster
			// ten_a comes first, but it holds its share (1 of 2) here.
			[]Job{job("a2", "ten_a", 0), job("b1", "ten_b", time.Minute)},
			load{slots: 2, mine: map[string]int{"ten_a": 1}, running: map[string]int{"ten_a": 1, "ten_b": 3}}, "b1"},
		{"a tenant at its share takes a slot nobody else waits for",
			[]Job{job("a2", "ten_a", 0)},
			load{slots: 2, mine: map[string]int{"ten_a": 1}, running: map[string]int{"ten_a": 1}}, "a2"},
		{"share counts the tenants holding slots here",
			// 3 slots, ten_a and ten_b: a share is 2; ten_a holds 1.
			[]Job{job("a2", "ten_a", 0), job("b1", "ten_b", time.Minute)},
			load{slots: 3, mine: map[string]int{"ten_a": 1}, running: map[string]int{"ten_a": 1, "ten_b": 5}}, "a2"},
		{"every tenant waiting at its share: the slot is used all the same",
			// 10 slots, 3 tenants: a share is 4; ten_a and ten_b hold 4.
			[]Job{job("a5", "ten_a", 0), job("b5", "ten_b", time.Minute)},
			load{slots: 10, mine: map[string]int{"ten_a": 4, "ten_b": 4, "ten_c": 1},
				running: map[string]int{"ten_a": 4, "ten_b": 5, "ten_c": 1}}, "a5"},
		{"a deferred job waits while another is due",
			[]Job{deferred(job("a1", "ten_a", 0), time.Second), job("b1", "ten_b", time.Minute)},
			load{slots: 2, running: map[string]int{"ten_b": 3}}, "b1"},
		{"a deferred job is due at its time",
			[]Job{deferred(job("a1", "ten_a", 0), 0), job("b1", "ten_b", time.Minute)},
			load{slots: 2, running: map[string]int{"ten_b": 3}}, "a1"},
		{"a deferred job of a tenant waits behind its other job",
			[]Job{deferred(job("a1", "ten_a", 0), time.Minute), job("a2", "ten_a", time.Minute)},
			load{slots: 2}, "a2"},
		{"a slot nothing due wants goes to a deferred job early",
			[]Job{deferred(job("a1", "ten_a", 0), time.Minute), deferred(job("b1", "ten_b", time.Minute), time.Second)},
			load{slots: 1, running: map[string]int{"ten_a": 1}}, "b1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pick(tt.waiting, now, tt.load)
			if !ok {
				got = Job{}
			}
			if got.ID != tt.want {
				t.Errorf("pick = %q (%v), want %q", got.ID, ok, tt.want)
			}
		})
	}
}

func TestDeferral(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{6, 160 * time.Second},
		{7, maxDeferral},
		{1000, maxDeferral},
	}
	for _, tt := range tests {
		if got := deferral(5*time.Second, tt.n); got != tt.want {
			t.Errorf("deferral(5s, %d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestYields(t *testing.T) {
	tests := []struct {
		name       string
		waited     time.Duration
		due, free  int
		wantYields bool
	}{
		{"another job due, no slot free", 5 * time.Second, 1, 0, true},
		{"not yet waited long enough", 4 * time.Second, 1, 0, false},
		{"nothing else due: keeps its slot", time.Hour, 0, 0, false},
		{"a slot free takes the other job", 5 * time.Second, 1, 1, false},
	}
	for _, tt := range tests {
		if got := yields(tt.waited, 5*time.Second, tt.due, tt.free); got != tt.wantYields {
			t.Errorf("%s: yields(%v, 5s, %d due, %d free) = %v, want %v", tt.name, tt.waited, tt.due, tt.free, got, tt.wantYields)
		}
	}
}
