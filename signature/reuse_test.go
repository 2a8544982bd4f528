package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// reference is HMAC-SHA256 of the signed content with a state of its
// own, as any verifier computes it.
func reference(key []byte, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(unix, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// TestSignReusesStateCorrectly signs different messages with one secret
// from several goroutines at once, so the secret's pooled HMAC states are
// reused and shared: every signature must be the one a fresh state gives,
// and a copy of the secret (as a subscription keeps it) signs the same.
func TestSignReusesStateCorrectly(t *testing.T) {
	s, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	copied := s
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := "msg_" + strconv.Itoa(g) + "_" + strconv.Itoa(i) + strings.Repeat("x", i) // past the scratch buffer's first size
				body := []byte(`{"n":` + strconv.Itoa(i) + `}`)
				unix := int64(vectorTS + i)
				sec := s
				if i%2 == 1 {
					sec = copied
				}
				if got, want := string(AppendSignature(nil, sec, id, unix, body)), reference(s.key, id, unix, body); got != want {
					t.Errorf("AppendSignature(%q) = %q, want %q", id, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSignZeroSecret signs with a zero Secret (no pool, no key): the MAC
// of the empty key, as before the states were pooled, not a panic.
func TestSignZeroSecret(t *testing.T) {
	if got, want := Sign(Secret{}, vectorID, time.Unix(vectorTS, 0), []byte(vectorBody)), reference(nil, vectorID, vectorTS, []byte(vectorBody)); got != want {
		t.Errorf("Sign(zero secret) = %q, want %q", got, want)
	}
}

// TestAppendAll appends the same header value SignAll returns, after
// what dst holds.
func TestAppendAll(t *testing.T) {
	secrets := []Secret{NewSecret(), NewSigningKey(), NewSecret()}
	at := time.Unix(vectorTS, 0)
	want := SignAll(secrets, vectorID, at, []byte(vectorBody))
	got := string(AppendAll([]byte("1614265330 "), secrets, vectorID, vectorTS, []byte(vectorBody)))
	if got != "1614265330 "+want {
		t.Errorf("AppendAll = %q, want %q after the prefix", got, want)
	}
}
