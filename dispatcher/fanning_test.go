package dispatcher

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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

// settledMsg records how a message was settled.
type settledMsg struct {
	jetstream.Msg
	ops []string
}

func (m *settledMsg) Ack() error { m.ops = append(m.ops, opAck); return nil }
func (m *settledMsg) NakWithDelay(time.Duration) error {
	m.ops = append(m.ops, opNak)
	return nil
}

// TestSettleSettlesTheCopiesThatJoined: an event delivered again during
// its fan-out is settled with it, as it is (acknowledged, or handed back
// when a delivery failed), and no longer held: left held, it would be
// kept alive forever and take one of the consumer's pending slots.
func TestSettleSettlesTheCopiesThatJoined(t *testing.T) {
	for _, tt := range []struct {
		name   string
		failed bool
		want   string
	}{
		{"every delivery settled", false, opAck},
		{"a delivery failed to be stored", true, opNak},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dispatcher{logger: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
			first, again := &settledMsg{}, &settledMsg{}
			ev := &event{msg: first, seq: 7}
			ev.remaining.Store(2)
			d.held.add(first, time.Now())
			d.fanning.add(ev)
			if !d.fanning.join(7, again) {
				t.Fatal("the copy did not join the event in fan-out")
			}
			d.held.add(again, time.Now())

			var err error
			if tt.failed {
				err = errors.New("stream unavailable")
			}
			d.settle(&delivery{ev: ev}, err)
			if len(first.ops)+len(again.ops) != 0 {
				t.Fatalf("settled after one of two deliveries: %v %v", first.ops, again.ops)
			}
			d.settle(&delivery{ev: ev}, nil)
			for name, m := range map[string]*settledMsg{"first": first, "copy": again} {
				if len(m.ops) != 1 || m.ops[0] != tt.want {
					t.Errorf("%s settled %v, want [%s]", name, m.ops, tt.want)
				}
			}
			if n := d.held.len(); n != 0 {
				t.Errorf("%d messages still held after the event settled", n)
			}
			if d.fanning.join(7, &settledMsg{}) {
				t.Error("a later copy joined an event already settled")
			}
		})
	}
}
