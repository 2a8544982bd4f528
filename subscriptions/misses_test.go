package subscriptions

import (
	"fmt"
	"testing"
	"time"
)

func TestMisses(t *testing.T) {
	type step struct {
		at     time.Duration // since the start
		op     string        // "add", "add-stale" (a lookup begun before the last put), "forget", "known"
		id     string
		want   bool // for known
		wantLn int  // ids held after the step, -1 for any
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"an unknown id is refused from memory within the TTL", 10, []step{
			{0, "known", "a", false, 0},
			{0, "add", "a", false, 1},
			{time.Second, "known", "a", true, 1},
			{5*time.Second - 1, "known", "a", true, 1},
			{5 * time.Second, "known", "a", false, 0},
		}},
		{"a key put forgets its id at once", 10, []step{
			{0, "add", "a", false, 1},
			{0, "add", "b", false, 2},
			{time.Second, "forget", "a", false, 1},
			{time.Second, "known", "a", false, 1},
			{time.Second, "known", "b", true, 1},
		}},
		{"a lookup begun before a put records no miss", 10, []step{
			{0, "add-stale", "a", false, 0},
			{0, "known", "a", false, 0},
		}},
		{"bounded: expired ids go first", 2, []step{
			{0, "add", "a", false, 1},
			{0, "add", "b", false, 2},
			{6 * time.Second, "add", "c", false, 1},
			{6 * time.Second, "known", "c", true, 1},
		}},
		{"bounded: full of live ids, one is dropped", 2, []step{
			{0, "add", "a", false, 1},
			{0, "add", "b", false, 2},
			{time.Second, "add", "c", false, 2},
			{time.Second, "known", "c", true, 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			now := start
			m := newMisses(5*time.Second, tt.max, func() time.Time { return now })
			for i, s := range tt.steps {
				now = start.Add(s.at)
				switch s.op {
				case "add":
					m.add(s.id, m.begin())
				case "add-stale":
					gen := m.begin()
					m.forget("other")
					m.add(s.id, gen)
				case "forget":
					m.forget(s.id)
				case "known":
					if got := m.known(s.id); got != s.want {
						t.Errorf("step %d: known(%q) at %v = %v, want %v", i, s.id, s.at, got, s.want)
					}
				}
				if s.wantLn >= 0 && m.len() != s.wantLn {
					t.Errorf("step %d (%s %q): %d ids held, want %d", i, s.op, s.id, m.len(), s.wantLn)
				}
			}
		})
	}
}

func TestMissesStayBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newMisses(5*time.Second, 100, func() time.Time { return now })
	for i := range 10000 {
		m.add(fmt.Sprintf("key_%d", i), m.begin())
	}
	if m.len() > 100 {
		t.Fatalf("%d ids held after 10,000 distinct misses, want at most 100", m.len())
	}
	if !m.known("key_9999") {
		t.Error("the latest miss is not remembered")
	}
}

func TestKeyPutForgetsItsMiss(t *testing.T) {
	for _, fromWatch := range []bool{false, true} {
		x := newIndex()
		x.misses.add("key_01ARZ3NDEKTSV4RRFFQ69G5FAV", x.misses.begin())
		x.putKey(&APIKey{ID: "key_01ARZ3NDEKTSV4RRFFQ69G5FAV", TenantID: "ten_1"}, 1, fromWatch)
		if x.misses.known("key_01ARZ3NDEKTSV4RRFFQ69G5FAV") {
			t.Errorf("putKey(fromWatch %v): the id is still refused from memory", fromWatch)
		}
	}
}
