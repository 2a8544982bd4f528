package limiter

import (
	"testing"
	"time"
)

// TestSwitchoverHysteresis: a table of time steps with NATS's answers; the
// limiter gives NATS up only after failures in a row, probes while local,
// and returns only after steady answers.
func TestSwitchoverHysteresis(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		ms        int
		tries     bool // tryShared's answer
		ok        bool // NATS answered (when tried)
		change    int
		wantLocal bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"failures among answers do not switch", []step{
			{0, true, false, stay, false},
			{10, true, true, stay, false},
			{20, true, false, stay, false},
			{30, true, false, stay, false},
			{40, true, true, stay, false},
			{2000, true, false, stay, false},
			{2500, true, false, stay, false},
			{2900, true, true, stay, false},
		}},
		{"a burst of failures shorter than a second does not switch", []step{
			{0, true, false, stay, false},
			{10, true, false, stay, false},
			{20, true, false, stay, false},
			{500, true, false, stay, false},
		}},
		{"failures with no answer for a second switch once", []step{
			{0, true, false, stay, false},
			{10, true, false, stay, false},
			{600, true, false, stay, false},
			{1000, true, false, toLocal, true},
			{1010, false, false, stay, true}, // within probeEvery: local, no try
		}},
		{"steady answers bring it back, a flap restarts the count", []step{
			{0, true, false, stay, false},
			{1, true, false, stay, false},
			{1002, true, false, toLocal, true},
			{1300, true, true, stay, true},
			{1600, true, true, stay, true},
			{1900, true, false, stay, true}, // flap
			{2200, true, true, stay, true},
			{2500, true, true, stay, true},
			{2800, true, true, stay, true},
			{3100, true, true, stay, true},
			{3400, true, true, stay, true}, // five in a row, but only 1.2 s
			{4300, true, true, toShared, false},
			{4301, true, true, stay, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s switchover
			for _, st := range tt.steps {
				tries := s.tryShared(at(st.ms))
				if tries != st.tries {
					t.Fatalf("at %d ms: tryShared = %v, want %v", st.ms, tries, st.tries)
				}
				if !tries {
					continue
				}
				if got := s.result(at(st.ms), st.ok); got != st.change {
					t.Fatalf("at %d ms: result(%v) = %d, want %d", st.ms, st.ok, got, st.change)
				}
				if s.isLocal() != st.wantLocal {
					t.Fatalf("at %d ms: local = %v, want %v", st.ms, s.isLocal(), st.wantLocal)
				}
			}
		})
	}
}
