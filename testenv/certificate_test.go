package testenv_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/testpki"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/testenv"
)

// sweeps reads webhooks_certificate_sweeps_total from reg.
func sweeps(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "webhooks_certificate_sweeps_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no webhooks_certificate_sweeps_total")
	return 0
}

// TestCertificateExpiring: two replicas on one NATS, whose events stream
// forgets message ids after 100 ms, sweep the subscriptions' client
// certificates every 100 ms. A subscription whose mTLS certificate
// expires in 3 days (within the default 14) raises certificate.expiring,
// one whose certificate has expired raises it with expired true, one 60
// days off raises nothing: each reaches the tenant's endpoint once and
// the operator's once, and is logged once, after many sweeps of both
// replicas.
func TestCertificateExpiring(t *testing.T) {
	t.Parallel()
	op := receiver(t)
	var mu sync.Mutex
	var regs []*prometheus.Registry
	a, b, logs := operatorStacks(t, op, func(c *server.Config) {
		c.Events.DedupeWindow = 100 * time.Millisecond
		c.CertificateSweep = 100 * time.Millisecond
		reg := prometheus.NewRegistry()
		c.Registry = reg
		mu.Lock()
		regs = append(regs, reg)
		mu.Unlock()
	})
	ten, err := a.CreateTenant("acme", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	notices := receiver(t)
	subscribe(t, a, ten, notices, "certificate.*")
	matchedEverywhere(t, ten, events.TypeCertificateExpiring, 1, a, b)
	ca := testpki.NewCA(t, "Receiver CA")
	now := time.Now()
	certs := map[string]testpki.Pair{
		"soon":    ca.ClientUntil(t, "soon.example", now.Add(3*24*time.Hour)),
		"expired": ca.ClientUntil(t, "expired.example", now.Add(-2*time.Hour)),
		"later":   ca.ClientUntil(t, "later.example", now.Add(60*24*time.Hour)),
	}
	subs := map[string]string{} // name to subscription id
	for i, name := range []string{"soon", "expired", "later"} {
		env := []*testenv.Env{a, b}[i%2]
		r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{
			"url": "https://" + name + ".example.com/hooks", "eventTypes": []string{"ticket.*"},
			"auth": map[string]any{"type": "mtls", "certificate": certs[name].CertPEM, "privateKey": certs[name].KeyPEM},
		})
		var s struct{ ID string }
		if r.Status != 201 || r.JSON(&s) != nil {
			t.Fatalf("create the %s subscription = %d %s", name, r.Status, r.Body)
		}
		subs[name] = s.ID
	}
	poll.Until(t, 30*time.Second, "both warnings reach the tenant and the operator", func() bool {
		return len(ofType(opEvents(t, notices), events.TypeCertificateExpiring)) >= 2 && len(ofType(opEvents(t, op), events.TypeCertificateExpiring)) >= 2
	})
	// Many sweeps later on both replicas, past the stream's duplicate
	// window many times over, nothing more.
	mu.Lock()
	seen := []float64{sweeps(t, regs[0]), sweeps(t, regs[1])}
	mu.Unlock()
	poll.Until(t, 30*time.Second, "both replicas sweep 5 more times", func() bool {
		return sweeps(t, regs[0]) >= seen[0]+5 && sweeps(t, regs[1]) >= seen[1]+5
	})
	got, ops := ofType(opEvents(t, notices), events.TypeCertificateExpiring), ofType(opEvents(t, op), events.TypeCertificateExpiring)
	if len(got) != 2 || len(ops) != 2 {
		t.Fatalf("certificate.expiring reached the tenant %d times and the operator %d times, want twice each (soon and expired)", len(got), len(ops))
	}
	if n := logs.operational(events.TypeCertificateExpiring); n != 2 {
		t.Errorf("certificate.expiring logged %d times by two replicas, want twice", n)
	}
	type certData struct {
		TenantID, SubscriptionID, URL, Subject string
		CertificateExpiresAt                   time.Time
		DaysLeft                               int
		Expired                                bool
	}
	bySub := map[string]opEvent{}
	for _, e := range got {
		var d certData
		json.Unmarshal(e.Data, &d)
		bySub[d.SubscriptionID] = e
		if e.TenantID != ten.ID || e.Verified != nil {
			t.Errorf("the tenant's %s: tenant %s, signature %v", e.ID, e.TenantID, e.Verified)
		}
	}
	for _, e := range ops {
		var d certData
		json.Unmarshal(e.Data, &d)
		if mine, ok := bySub[d.SubscriptionID]; !ok || mine.ID != e.ID || e.TenantID != subscriptions.OperatorTenant || d.TenantID != ten.ID || e.Verified != nil {
			t.Errorf("the operator's copy %s (%s) = %+v, want the tenant's event under the operator's tenant, signed, naming %s", e.ID, e.Data, e, ten.ID)
		}
	}
	for _, c := range []struct {
		name     string
		daysLeft int
		expired  bool
	}{{"soon", 2, false}, {"expired", 0, true}} {
		e, ok := bySub[subs[c.name]]
		if !ok {
			t.Errorf("no certificate.expiring for the %s subscription", c.name)
			continue
		}
		var d certData
		json.Unmarshal(e.Data, &d)
		if d.URL != "https://"+c.name+".example.com/hooks" || d.Subject != "CN="+c.name+".example,O=One Stack tests" ||
			!d.CertificateExpiresAt.Equal(certs[c.name].Cert.NotAfter) || d.DaysLeft != c.daysLeft || d.Expired != c.expired || d.TenantID != ten.ID {
			t.Errorf("the %s subscription's warning = %s, want its url, subject, notAfter %v, daysLeft %d, expired %v",
				c.name, e.Data, certs[c.name].Cert.NotAfter, c.daysLeft, c.expired)
		}
	}
	if _, ok := bySub[subs["later"]]; ok {
		t.Error("a certificate 60 days from its expiry was warned of")
	}
}
