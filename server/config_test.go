package server

import (
	"strings"
	"testing"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/events"
)

// TestConfigDefaults checks that an empty Config takes its defaults from
// the constants of the packages that own them, and that set fields stay.
func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Addr != DefaultAddr || c.DataDir != DefaultDataDir || c.Logger == nil {
		t.Errorf("Addr, DataDir, Logger = %q, %q, %v; want %q, %q, a logger", c.Addr, c.DataDir, c.Logger, DefaultAddr, DefaultDataDir)
	}
	if c.Events.Retention != events.DefaultRetention {
		t.Errorf("Events.Retention = %v, want %v", c.Events.Retention, events.DefaultRetention)
	}
	if c.Dispatcher.AttemptRetention != deliverylog.DefaultRetention {
		t.Errorf("Dispatcher.AttemptRetention = %v, want %v", c.Dispatcher.AttemptRetention, deliverylog.DefaultRetention)
	}
	if c.Storage.HighWater != DefaultHighWater {
		t.Errorf("Storage.HighWater = %v, want %v", c.Storage.HighWater, DefaultHighWater)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	set := Config{Addr: ":0", DataDir: "/d", Events: events.StreamConfig{Retention: 3600e9},
		Dispatcher: dispatcher.Config{AttemptRetention: 7200e9}, Storage: StorageConfig{HighWater: 0.5}}.WithDefaults()
	if set.Addr != ":0" || set.DataDir != "/d" || set.Events.Retention != 3600e9 || set.Dispatcher.AttemptRetention != 7200e9 || set.Storage.HighWater != 0.5 {
		t.Errorf("WithDefaults changed set fields: %+v", set)
	}
}

// TestConfigValidate checks that each impossible setting is refused with
// an error that names it, and that possible ones pass.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid; parts joined by " & " must all be there
	}{
		{name: "zero", cfg: Config{}},
		{name: "replicas 3", cfg: Config{Replicas: 3}},
		{name: "replicas 6", cfg: Config{Replicas: 6}, wantErr: "replicas 6: want 1 to 5"},
		{name: "replicas negative", cfg: Config{Replicas: -1}, wantErr: "replicas -1"},
		{name: "event retention negative", cfg: Config{Events: events.StreamConfig{Retention: -1}}, wantErr: "event retention"},
		{name: "delivery retention negative", cfg: Config{Dispatcher: dispatcher.Config{AttemptRetention: -1}}, wantErr: "delivery retention"},
		{name: "rotation overlap negative", cfg: Config{RotationOverlap: -1}, wantErr: "secret rotation overlap"},
		{name: "listen with external", cfg: Config{NATSListen: "127.0.0.1:4222", NATSURL: "nats://x", NATSAuth: NATSAuth{Token: "t"}}, wantErr: "cannot be used with NATSURL"},
		{name: "listen without credentials", cfg: Config{NATSListen: "127.0.0.1:4222"}, wantErr: "needs credentials"},
		{name: "listen with token", cfg: Config{NATSListen: "127.0.0.1:4222", NATSAuth: NATSAuth{Token: "t"}}},
		{name: "negative byte limit", cfg: Config{Storage: StorageConfig{EventsMaxBytes: -1}}, wantErr: "negative byte limit"},
		{name: "high water past 1", cfg: Config{Storage: StorageConfig{HighWater: 1.5}}, wantErr: "high-water mark 1.5"},
		{name: "rate limiter unknown", cfg: Config{RateLimiter: "redis"}, wantErr: `rate limiter "redis"`},
		{name: "rate limiter local", cfg: Config{RateLimiter: "local"}},
		{name: "public URL with a path", cfg: Config{PublicURL: "https://hooks.example.com/x"}, wantErr: "public URL"},
		{name: "public URL", cfg: Config{PublicURL: "https://hooks.example.com"}},
		{name: "dispatcher jitter", cfg: Config{Dispatcher: dispatcher.Config{Jitter: 1}}, wantErr: "dispatcher: jitter"},
		{name: "operator url without a secret", cfg: Config{Operator: OperatorConfig{URL: "https://ops.example.com/hooks"}}, wantErr: "operator webhook: a url needs a secret"},
		{name: "operator secret without a url", cfg: Config{Operator: OperatorConfig{Secret: "whsec_x"}}, wantErr: "operator webhook: a secret without a url"},
		{name: "two at once", cfg: Config{Replicas: 9, RateLimiter: "x"}, wantErr: `replicas 9 & rate limiter "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			for _, part := range strings.Split(tc.wantErr, " & ") {
				if err == nil || !strings.Contains(err.Error(), part) {
					t.Fatalf("Validate() = %v, want an error with %q", err, part)
				}
			}
		})
	}
}
