package server

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// Defaults of Config's own fields; the others are the defaults of the
// packages that own them (events.DefaultRetention,
// deliverylog.DefaultRetention, dispatcher.DefaultWorkers, ...).
const (
	// DefaultAddr is Config.Addr's default.
	DefaultAddr = "127.0.0.1:8080"
	// DefaultDataDir is Config.DataDir's default.
	DefaultDataDir = "./data"
	// DefaultHighWater is Config.Storage.HighWater's default.
	DefaultHighWater = 0.9
	// maxReplicas is JetStream's largest replication factor.
	maxReplicas = 5
)

// WithDefaults returns c with its unset fields at their defaults: those
// Start reads itself (the address, the data directory, the logger, the
// storage high-water mark) and the retentions that bound replays and
// recoveries. The other packages' settings are left for each package to
// default.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Events.Retention == 0 {
		c.Events.Retention = events.DefaultRetention
	}
	if c.Dispatcher.AttemptRetention == 0 {
		c.Dispatcher.AttemptRetention = deliverylog.DefaultRetention
	}
	if c.Storage.HighWater == 0 {
		c.Storage.HighWater = DefaultHighWater
	}
	return c
}

// Validate reports the settings that cannot work, all of them, each with
// what it wants.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 0 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("replicas %d: want 1 to %d (0: 1)", c.Replicas, maxReplicas))
	}
	if c.Events.Retention < 0 {
		errs = append(errs, fmt.Errorf("event retention %v: must not be negative (0: %v)", c.Events.Retention, events.DefaultRetention))
	}
	if c.Dispatcher.AttemptRetention < 0 {
		errs = append(errs, fmt.Errorf("delivery retention %v: must not be negative (0: %v)", c.Dispatcher.AttemptRetention, deliverylog.DefaultRetention))
	}
	if c.RotationOverlap < 0 {
		errs = append(errs, fmt.Errorf("secret rotation overlap %v: must not be negative", c.RotationOverlap))
	}
	if c.NATSListen != "" && c.NATSURL != "" {
		errs = append(errs, errors.New("NATSListen exposes the embedded NATS server: it cannot be used with NATSURL"))
	}
	if err := c.NATSAuth.validate(c.NATSListen); err != nil {
		errs = append(errs, err)
	}
	if err := c.Storage.validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.RateLimiter {
	case "", "nats", "local", "off":
	default:
		errs = append(errs, fmt.Errorf("rate limiter %q: want nats, local or off", c.RateLimiter))
	}
	if c.PublicURL != "" {
		if err := api.CheckPublicURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("public URL %q: %w", c.PublicURL, err))
		}
	}
	if err := c.Dispatcher.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("dispatcher: %w", err))
	}
	if err := c.Operator.validate(subscriptions.NewRules(events.DefaultCatalog(), c.Egress)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
