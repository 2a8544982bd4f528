package signature

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The known-answer vector of the Standard Webhooks specification.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignKnownAnswer(t *testing.T) {
	s, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	got := Sign(s, vectorID, time.Unix(vectorTS, 0), []byte(vectorBody))
	if got != vectorSig {
		t.Errorf("Sign = %q, want %q", got, vectorSig)
	}
}

func TestVerify(t *testing.T) {
	s, _ := ParseSecret(vectorSecret)
	other := NewSecret()
	at := time.Unix(vectorTS, 0)
	tests := []struct {
		name    string
		secrets []Secret
		now     time.Time
		id, ts  string
		sig     string
		body    string
		want    error
	}{
		{"exact", []Secret{s}, at, vectorID, "1614265330", vectorSig, vectorBody, nil},
		{"one of a list", []Secret{s}, at, vectorID, "1614265330", "v1,AAAA " + vectorSig + " v2,zzz", vectorBody, nil},
		{"second secret", []Secret{other, s}, at, vectorID, "1614265330", vectorSig, vectorBody, nil},
		{"4m59s late", []Secret{s}, at.Add(299 * time.Second), vectorID, "1614265330", vectorSig, vectorBody, nil},
		{"5m1s late", []Secret{s}, at.Add(301 * time.Second), vectorID, "1614265330", vectorSig, vectorBody, ErrTimestampRange},
		{"5m1s early", []Secret{s}, at.Add(-301 * time.Second), vectorID, "1614265330", vectorSig, vectorBody, ErrTimestampRange},
		{"body changed", []Secret{s}, at, vectorID, "1614265330", vectorSig, vectorBody + " ", ErrNoMatch},
		{"id changed", []Secret{s}, at, "msg_x", "1614265330", vectorSig, vectorBody, ErrNoMatch},
		{"wrong secret", []Secret{other}, at, vectorID, "1614265330", vectorSig, vectorBody, ErrNoMatch},
		{"v2 only", []Secret{s}, at, vectorID, "1614265330", strings.Replace(vectorSig, "v1", "v2", 1), vectorBody, ErrNoMatch},
		{"bad timestamp", []Secret{s}, at, vectorID, "16142x", vectorSig, vectorBody, ErrInvalidTimestamp},
		{"missing signature", []Secret{s}, at, vectorID, "1614265330", "", vectorBody, ErrMissingHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Verifier{Secrets: tt.secrets, Now: func() time.Time { return tt.now }}
			err := v.Verify(tt.id, tt.ts, tt.sig, []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestSignAllCarriesEverySecret(t *testing.T) {
	old, cur := NewSecret(), NewSecret()
	now := time.Now()
	header := SignAll([]Secret{cur, old}, "evt_1", now, []byte("{}"))
	if n := len(strings.Fields(header)); n != 2 {
		t.Fatalf("SignAll gave %d signatures, want 2: %q", n, header)
	}
	for name, s := range map[string]Secret{"old": old, "new": cur} {
		if err := (Verifier{Secrets: []Secret{s}}).Verify("evt_1", itoa(now.Unix()), header, []byte("{}")); err != nil {
			t.Errorf("Verify with the %s secret alone = %v, want nil", name, err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{vectorSecret, nil},
		{strings.TrimPrefix(vectorSecret, SecretPrefix), nil},
		{"whsec_!!!", ErrInvalidSecret},
		{"whsec_c2hvcnQ=", ErrInvalidSecret},
		{"", ErrInvalidSecret},
	}
	for _, tt := range tests {
		_, err := ParseSecret(tt.in)
		if !errors.Is(err, tt.want) {
			t.Errorf("ParseSecret(%q) = %v, want %v", tt.in, err, tt.want)
		}
	}
	s := NewSecret()
	back, err := ParseSecret(s.Reveal())
	if err != nil || back.Reveal() != s.Reveal() {
		t.Errorf("ParseSecret(Reveal()) = %v, %v; want the same secret", back.Reveal(), err)
	}
	if s.String() != "REDACTED" || s.LogValue().String() != "REDACTED" {
		t.Errorf("secret prints as %q / %q, want REDACTED", s.String(), s.LogValue())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func BenchmarkSign(b *testing.B) {
	s := NewSecret()
	body := []byte(`{"id":"evt_01JDQ4","type":"ticket.updated","tenantId":"ten_01","occurredAt":"2026-11-26T10:00:00Z","data":{"ticketId":"T-1042","status":"open","priority":"high"}}`)
	buf := make([]byte, 0, 64)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSignature(buf[:0], s, "evt_01JDQ4", 1764172800, body)
	}
}
