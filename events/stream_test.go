package events

import (
	"testing"
	"time"
)

// TestDedupeMargin: the margin is a publish's timeout (the default one
// when unset) and the clocks' skew.
func TestDedupeMargin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		publishTimeout, want time.Duration
	}{
		{0, DefaultPublishTimeout + ClockSkew},
		{-time.Second, DefaultPublishTimeout + ClockSkew},
		{3 * time.Second, 3*time.Second + ClockSkew},
		{time.Minute, time.Minute + ClockSkew},
	} {
		if got := DedupeMargin(tc.publishTimeout); got != tc.want {
			t.Errorf("DedupeMargin(%v) = %v, want %v", tc.publishTimeout, got, tc.want)
		}
	}
}

// TestDefaultNATSWindow: NATS's own window by default exceeds the margin
// by IndexSlack (so a busy index answers without asking the stream), and
// no more: every second of it is memory.
func TestDefaultNATSWindow(t *testing.T) {
	t.Parallel()
	c := StreamConfig{}.WithDefaults()
	if got, want := c.NATSWindow-DedupeMargin(0), IndexSlack; got != want {
		t.Errorf("default NATS window %v less the margin %v = %v, want IndexSlack %v", c.NATSWindow, DedupeMargin(0), got, want)
	}
	if IndexSlack <= 0 {
		t.Errorf("IndexSlack %v: the window must exceed the margin", IndexSlack)
	}
	if c.NATSWindow != 30*time.Second {
		t.Errorf("default NATS window %v, want 30s (the README's figures are measured at it)", c.NATSWindow)
	}
	// A short duplicate window bounds NATS's.
	if c := (StreamConfig{DedupeWindow: 5 * time.Second}).WithDefaults(); c.NATSWindow != 5*time.Second {
		t.Errorf("NATS window with a 5s duplicate window = %v, want 5s", c.NATSWindow)
	}
}
