package opevents

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/syncbuf"
	"github.com/onestack/webhooks/internal/testpki"
)

// lineCount counts the "operational event" lines logged through it.
type lineCount struct{ syncbuf.Buffer }

func (l *lineCount) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

func (l *lineCount) n() int { return strings.Count(l.String(), `"msg":"operational event"`) }

// TestCertificateDue: which warning is due for a certificate, by how far
// its notAfter is.
func TestCertificateDue(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	tests := []struct {
		name     string
		notAfter time.Time
		warning  time.Duration
		want     CertificateNotice
	}{
		{"far off", now.Add(90 * day), 14 * day, NoNotice},
		{"a second before the warning", now.Add(14*day + time.Second), 14 * day, NoNotice},
		{"at the warning", now.Add(14 * day), 14 * day, Expiring},
		{"within it", now.Add(3 * day), 14 * day, Expiring},
		{"a second left", now.Add(time.Second), 14 * day, Expiring},
		{"at notAfter", now, 14 * day, Expired},
		{"long expired", now.Add(-400 * day), 14 * day, Expired},
		{"warning off", now.Add(3 * day), 0, NoNotice},
		{"warning off, expired", now.Add(-day), -1, NoNotice},
		{"a short warning", now.Add(2 * time.Hour), time.Hour, NoNotice},
	}
	for _, tt := range tests {
		if got := CertificateDue(tt.notAfter, now, tt.warning); got != tt.want {
			t.Errorf("%s: CertificateDue(notAfter %v, warning %v) = %v, want %v", tt.name, tt.notAfter.Sub(now), tt.warning, got, tt.want)
		}
	}
}

// TestCertificateEvent: the event's id is stable for a subscription,
// certificate and notice, and another for each of them; its data names
// the tenant, subscription, url, subject, expiry and days left.
func TestCertificateEvent(t *testing.T) {
	ca := testpki.NewCA(t, "CA")
	mtls := func(p testpki.Pair) *endpointauth.Config {
		return (&endpointauth.Config{Type: endpointauth.TypeMTLS, Certificate: p.CertPEM, PrivateKey: p.KeyPEM}).Prepared()
	}
	a, b := mtls(ca.Client(t, "svc", 72*time.Hour)), mtls(ca.Client(t, "svc", 72*time.Hour))
	notAfter, _ := a.CertificateExpiresAt()
	now := notAfter.Add(-(50 * time.Hour))
	ep := Endpoint{Tenant: "ten_a", Subscription: "sub_01JD0000000000000000000000", URL: "https://example.com/h"}
	ev := Certificate(ep, a, Expiring, notAfter, now)
	if again := Certificate(ep, a, Expiring, notAfter, now.Add(time.Hour)); again.ID != ev.ID {
		t.Errorf("the same warning an hour later has id %q, want %q", again.ID, ev.ID)
	}
	other := ep
	other.Subscription = "sub_01JD0000000000000000000001"
	for _, o := range []string{
		Certificate(ep, a, Expired, notAfter, now).ID,
		Certificate(ep, b, Expiring, notAfter, now).ID,
		Certificate(other, a, Expiring, notAfter, now).ID,
	} {
		if o == ev.ID {
			t.Errorf("id %q for another notice, certificate or subscription", o)
		}
		if !events.ValidID(o) {
			t.Errorf("id %q is not a valid event id", o)
		}
	}
	if !events.ValidID(ev.ID) || ev.Type != events.TypeCertificateExpiring || ev.TenantID != "ten_a" {
		t.Errorf("event = %+v, want a valid id, certificate.expiring, the tenant", ev)
	}
	var d struct {
		TenantID, SubscriptionID, URL, Subject string
		CertificateExpiresAt                   time.Time
		DaysLeft                               int
		Expired                                bool
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.TenantID != "ten_a" || d.SubscriptionID != ep.Subscription || d.URL != ep.URL || d.Subject != "CN=svc,O=One Stack tests" ||
		!d.CertificateExpiresAt.Equal(notAfter) || d.DaysLeft != 2 || d.Expired {
		t.Errorf("data = %s, want the subscription, subject, expiry and 2 days left", ev.Data)
	}
	json.Unmarshal(Certificate(ep, a, Expired, notAfter, notAfter.Add(time.Hour)).Data, &d)
	if !d.Expired || d.DaysLeft != 0 {
		t.Errorf("expired data: daysLeft %d, expired %v; want 0, true", d.DaysLeft, d.Expired)
	}
	if ttl := certificateTTL(Expiring, notAfter, now); ttl < 50*time.Hour {
		t.Errorf("a warning is remembered %v, want past the expiry (50 h away)", ttl)
	}
}

// TestCertificateSchemaExample: the catalog's example of
// certificate.expiring satisfies its schema.
func TestCertificateSchemaExample(t *testing.T) {
	typ, ok := events.DefaultCatalog().Lookup(events.TypeCertificateExpiring)
	if !ok || !typ.Internal || typ.Schema == nil || typ.Example == nil {
		t.Fatalf("catalog's %s = %+v, want an internal type with a schema and an example", events.TypeCertificateExpiring, typ)
	}
	if !events.Operational(events.TypeCertificateExpiring) {
		t.Error("certificate.expiring is not operational")
	}
	schema, problems := events.CompileSchema(typ.Schema)
	if problems != nil {
		t.Fatalf("schema: %v", problems)
	}
	ca := testpki.NewCA(t, "CA")
	pair := ca.Client(t, "svc", time.Hour)
	auth := (&endpointauth.Config{Type: endpointauth.TypeMTLS, Certificate: pair.CertPEM, PrivateKey: pair.KeyPEM}).Prepared()
	ep := Endpoint{Tenant: "ten_a", Subscription: "sub_1", URL: "https://example.com/h"}
	for name, data := range map[string][]byte{
		"example":  typ.Example,
		"expiring": Certificate(ep, auth, Expiring, pair.Cert.NotAfter, time.Now()).Data,
		"expired":  Certificate(ep, auth, Expired, pair.Cert.NotAfter, pair.Cert.NotAfter.Add(time.Hour)).Data,
	} {
		if p := schema.Check(data); p != nil {
			t.Errorf("%s %s off the schema: %v", name, data, p)
		}
	}
}
