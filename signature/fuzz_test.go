package signature

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers and bodies to the verifiers (v1 and
// v1a): they must never panic, and a signature made by Sign must always
// verify.
func FuzzVerify(f *testing.F) {
	f.Add(vectorID, "1614265330", vectorSig, []byte(vectorBody))
	f.Add("", "", "", []byte(nil))
	f.Add("a", "-1", "v1, v1,,, v1,=== v2,abc", []byte("x"))
	f.Add("a", "1614265330", "v1a, v1a,,, v1a,=== v1a,"+strings.Repeat("A", 88), []byte("x"))
	s, _ := ParseSecret(vectorSecret)
	pair := NewSigningKey()
	at := time.Unix(vectorTS, 0)
	v := Verifier{Secrets: []Secret{s}, Now: func() time.Time { return at }}
	va := Verifier{PublicKeys: []PublicKey{pair.PublicKey()}, Now: func() time.Time { return at }}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		_ = v.Verify(id, ts, sig, body)
		_ = va.Verify(id, ts, sig, body)
		_ = ParseSignatures(sig)
		_ = ParseAsymmetricSignatures(sig)
		if id == "" {
			return
		}
		good := Sign(s, id, at, body)
		if err := v.Verify(id, "1614265330", sig+" "+good, body); err != nil {
			t.Fatalf("Verify(own signature appended to %q) = %v, want nil", sig, err)
		}
		goodA := Sign(pair, id, at, body)
		if err := va.Verify(id, "1614265330", sig+" "+goodA, body); err != nil {
			t.Fatalf("Verify(own v1a signature appended to %q) = %v, want nil", sig, err)
		}
	})
}
