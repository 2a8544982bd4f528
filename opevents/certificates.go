package opevents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// DefaultCertificateWarning is how long before its expiry a client
// certificate is warned of by default.
const DefaultCertificateWarning = 14 * 24 * time.Hour

// CertificateNotice is which certificate.expiring event is due.
type CertificateNotice int

// The notices: none, expiring within the warning, expired.
const (
	NoNotice CertificateNotice = iota
	Expiring
	Expired
)

// CertificateDue reports which warning is due at now for a certificate
// expiring at notAfter, warned of warning before: Expired from notAfter on,
// Expiring within warning before it, else none; a warning of 0 or less
// turns both off.
func CertificateDue(notAfter, now time.Time, warning time.Duration) CertificateNotice {
	switch {
	case warning <= 0:
		return NoNotice
	case !now.Before(notAfter):
		return Expired
	case notAfter.Sub(now) <= warning:
		return Expiring
	}
	return NoNotice
}

// expiredTTL is how long the cluster remembers that a certificate's
// expiry was told: an expired certificate still in use is told again a
// year later.
const expiredTTL = 366 * 24 * time.Hour

// certificateTTL is how long the cluster remembers that notice n of a
// certificate expiring at notAfter was raised at now: the warning until a
// day past the expiry (it is not due after it), the expiry a year.
func certificateTTL(n CertificateNotice, notAfter, now time.Time) time.Duration {
	if n == Expired {
		return expiredTTL
	}
	return max(notAfter.Sub(now)+24*time.Hour, time.Hour)
}

// Certificate is certificate.expiring for notice n of the mtls client
// certificate of sub's auth (expiring at notAfter), found at now. Its id
// is made of the subscription, the auth's fingerprint and the notice, so
// the one warning of a certificate is one event.
func Certificate(ep Endpoint, auth *endpointauth.Config, n CertificateNotice, notAfter, now time.Time) events.Event {
	days := int64(0)
	if left := notAfter.Sub(now); left > 0 && n != Expired {
		days = int64(left / (24 * time.Hour))
	}
	data, _ := json.Marshal(struct {
		TenantID             string    `json:"tenantId"`
		SubscriptionID       string    `json:"subscriptionId"`
		URL                  string    `json:"url"`
		Subject              string    `json:"subject"`
		CertificateExpiresAt time.Time `json:"certificateExpiresAt"`
		DaysLeft             int64     `json:"daysLeft"`
		Expired              bool      `json:"expired"`
	}{ep.Tenant, ep.Subscription, ep.URL, auth.Public().Subject, notAfter.UTC(), days, n == Expired})
	kind := "certificate-expiring_"
	if n == Expired {
		kind = "certificate-expired_"
	}
	h := sha256.Sum256([]byte(ep.Subscription + "\x00" + auth.Fingerprint()))
	return events.Event{ID: events.IDPrefix + kind + hex.EncodeToString(h[:16]), Type: events.TypeCertificateExpiring,
		TenantID: ep.Tenant, OccurredAt: now.UTC(), Data: data}
}

// CertificatesConfig tunes the sweep of client certificates; the zero
// value means the defaults.
type CertificatesConfig struct {
	// Warning is how long before its expiry a certificate is warned of
	// (default 14 days; negative: never, no sweep runs).
	Warning time.Duration
	// Every is the time between sweeps (default an hour); one runs at
	// start.
	Every time.Duration
}

func (c CertificatesConfig) withDefaults() CertificatesConfig {
	if c.Warning == 0 {
		c.Warning = DefaultCertificateWarning
	}
	if c.Every <= 0 {
		c.Every = time.Hour
	}
	return c
}

// Certificates sweeps the subscriptions' mtls client certificates on
// every replica and raises certificate.expiring for those near or past
// their expiry: once per subscription, certificate and notice in the
// cluster (the emitter's Once decides which replica).
type Certificates struct {
	e      *Emitter
	list   func() []*subscriptions.Subscription
	cfg    CertificatesConfig
	sweeps prometheus.Counter

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartCertificates sweeps what list returns (the live subscription
// index's subscriptions with auth) now and then every cfg.Every, until
// Stop. A nil Emitter, or a warning turned off, sweeps nothing.
func StartCertificates(e *Emitter, list func() []*subscriptions.Subscription, cfg CertificatesConfig, reg prometheus.Registerer) *Certificates {
	c := &Certificates{e: e, list: list, cfg: cfg.withDefaults(), sweeps: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhooks_certificate_sweeps_total", Help: "Sweeps of the subscriptions' mTLS client certificates for certificate.expiring run by this replica.",
	})}
	if reg != nil {
		reg.MustRegister(c.sweeps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if e == nil || c.cfg.Warning < 0 {
		return c
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.cfg.Every)
		defer t.Stop()
		for {
			c.Sweep(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// Sweep queues certificate.expiring for every certificate of the list
// with a notice due now, and reports how many it queued (each raised by
// one replica of the cluster). It waits for room in the queue, until ctx
// ends.
func (c *Certificates) Sweep(ctx context.Context) int {
	if c.e == nil {
		return 0
	}
	now := c.e.cfg.Now()
	n := 0
	for _, sub := range c.list() {
		auth := sub.Auth()
		if auth == nil || auth.Type != endpointauth.TypeMTLS || sub.TenantID == c.e.cfg.Operator {
			continue
		}
		notAfter, ok := auth.CertificateExpiresAt()
		if !ok {
			continue
		}
		notice := CertificateDue(notAfter, now, c.cfg.Warning)
		if notice == NoNotice {
			continue
		}
		ev := Certificate(Endpoint{Tenant: sub.TenantID, Subscription: sub.ID, URL: sub.URL}, auth, notice, notAfter, now)
		if !c.e.enqueueWait(ctx, queued{ev: ev, once: sub.TenantID + "." + ev.ID, ttl: certificateTTL(notice, notAfter, now)}) {
			break
		}
		n++
	}
	c.sweeps.Inc()
	return n
}

// Stop ends the sweeps, waiting for the one running.
func (c *Certificates) Stop() {
	if c == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
}
