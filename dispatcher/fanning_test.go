package dispatcher

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestFanningJoinsAnEventDeliveredAgain: a message of a sequence in
// fan-out joins it and is returned with it once it is done; one of a
// sequence not in fan-out (never added, or done already) is the caller's.
func TestFanningJoinsAnEventDeliveredAgain(t *testing.T) {
	first, again, late := &fakeMsg{}, &fakeMsg{}, &fakeMsg{}
	tests := []struct {
		name     string
		run      func(f *fanning, ev *event) (joined []bool, returned []jetstream.Msg)
		joined   []bool
		returned []jetstream.Msg
	}{
		{
			name: "delivered again during the fan-out joins it",
			run: func(f *fanning, ev *event) ([]bool, []jetstream.Msg) {
				f.add(ev)
				j1, j2 := f.join(7, again), f.join(7, late)
				return []bool{j1, j2}, f.done(ev)
			},
			joined:   []bool{true, true},
			returned: []jetstream.Msg{again, late},
		},
		{
			name: "another sequence does not join",
			run: func(f *fanning, ev *event) ([]bool, []jetstream.Msg) {
				f.add(ev)
				return []bool{f.join(8, again)}, f.done(ev)
			},
			joined: []bool{false},
		},
		{
			name: "delivered again after the fan-out ended is the caller's",
			run: func(f *fanning, ev *event) ([]bool, []jetstream.Msg) {
				f.add(ev)
				done := f.done(ev)
				return []bool{f.join(7, late)}, done
			},
			joined: []bool{false},
		},
		{
			name: "the fan-out of a later copy is not ended by the first's",
			run: func(f *fanning, ev *event) ([]bool, []jetstream.Msg) {
				f.add(&event{msg: again, seq: 7}) // the sequence fanned out anew
				done := f.done(ev)                // the first copy, settled late
				return []bool{f.join(7, late)}, done
			},
			joined: []bool{true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f fanning
			joined, returned := tt.run(&f, &event{msg: first, seq: 7})
			if len(joined) != len(tt.joined) {
				t.Fatalf("joined %v, want %v", joined, tt.joined)
			}
			for i := range joined {
				if joined[i] != tt.joined[i] {
					t.Errorf("join %d = %v, want %v", i, joined[i], tt.joined[i])
				}
			}
			if len(returned) != len(tt.returned) {
				t.Fatalf("done returned %d messages, want %d", len(returned), len(tt.returned))
			}
			for i := range returned {
				if returned[i] != tt.returned[i] {
					t.Errorf("done returned message %d = %p, want %p", i, returned[i], tt.returned[i])
				}
			}
		})
	}
}
