package history

import (
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
)

// TestDuplicatesReach: the event index's check reaches back past NATS's
// window by the publish timeout and the clocks' skew, so with the default
// windows the index must hold every event stored before now less
// IndexSlack, and with a window at or below the margin, every event
// stored before now (each check then catches up with the stream first).
func TestDuplicatesReach(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		sc             events.StreamConfig
		publishTimeout time.Duration
		// behind is how far behind now the index must hold every event:
		// StreamWindow − Margin (≤ 0: up to now or later, so always caught up first).
		behind time.Duration
		margin time.Duration
	}{
		{"defaults", events.StreamConfig{}, 0, events.IndexSlack, 20 * time.Second},
		{"a one-minute NATS window", events.StreamConfig{NATSWindow: time.Minute}, 0, 40 * time.Second, 20 * time.Second},
		{"a shorter publish timeout", events.StreamConfig{}, 4 * time.Second, 16 * time.Second, 14 * time.Second},
		{"a window below the margin", events.StreamConfig{NATSWindow: time.Second}, 0, -19 * time.Second, 20 * time.Second},
	} {
		d := duplicates(nil, tc.sc, tc.publishTimeout)
		if d.Margin != tc.margin {
			t.Errorf("%s: margin %v, want %v", tc.name, d.Margin, tc.margin)
		}
		if got := d.StreamWindow - d.Margin; got != tc.behind {
			t.Errorf("%s: the index must reach %v behind now, want %v", tc.name, got, tc.behind)
		}
		if d.Window != events.DefaultDedupeWindow {
			t.Errorf("%s: window %v, want the default %v", tc.name, d.Window, events.DefaultDedupeWindow)
		}
	}
}
