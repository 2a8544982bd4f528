package main

import (
	"io"
	"testing"
	"time"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/subscriptions"
)

// TestFlagDefaultsAreThePackagesDefaults checks that a flag left unset
// means what the package that owns the setting defaults to.
func TestFlagDefaultsAreThePackagesDefaults(t *testing.T) {
	t.Parallel()
	o, err := parse(nil, func(string) string { return "" }, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flag      string
		got, want any
	}{
		{"addr", o.addr, server.DefaultAddr},
		{"data-dir", o.dataDir, server.DefaultDataDir},
		{"storage-high-water", o.storage.HighWater, server.DefaultHighWater},
		{"event-retention", o.eventRetention, events.DefaultRetention},
		{"dedupe-window", o.dedupeWindow, events.DefaultDedupeWindow},
		{"nats-dedupe-window", o.natsWindow, events.DefaultNATSWindow},
		{"gc-percent", o.gcPercent, 100},
		{"delivery-retention", o.deliveryRetention, deliverylog.DefaultRetention},
		{"delivery-timeout", o.timeout, dispatcher.DefaultTimeout},
		{"workers", o.workers, dispatcher.DefaultWorkers},
		{"subscription-concurrency", o.perSub, dispatcher.DefaultPerSubscription},
		{"tenant-concurrency", o.tenantInFlight, dispatcher.DefaultTenantInFlight},
		{"stall-after", o.stallAfter, dispatcher.DefaultStallAfter},
		{"disable-after-failing", o.failPeriod, dispatcher.DefaultDisableAfter},
		{"failing-after", o.failingAfter, dispatcher.DefaultFailingAfter},
		{"destination-concurrency", o.destMax, destination.DefaultMax},
		{"job-rate", o.jobRate, float64(jobs.DefaultRate)},
		{"secret-rotation-overlap", o.rotationOverlap, subscriptions.DefaultRotationOverlap},
	} {
		if c.got != c.want {
			t.Errorf("--%s defaults to %v, want %v", c.flag, c.got, c.want)
		}
	}
}

// TestNever: a flag's 0 (never) reaches its package as a negative value,
// where zero would mean the default; any other value as it is.
func TestNever(t *testing.T) {
	t.Parallel()
	if got := never(0); got != -1 {
		t.Errorf("never(0) = %d, want -1", got)
	}
	if got := never(3); got != 3 {
		t.Errorf("never(3) = %d, want 3", got)
	}
	if got := never(time.Duration(0)); got >= 0 {
		t.Errorf("never(0s) = %v, want negative", got)
	}
	if got := never(time.Hour); got != time.Hour {
		t.Errorf("never(1h) = %v, want 1h", got)
	}
}
