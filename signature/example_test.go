package signature_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/onestack/webhooks/signature"
)

// A receiver verifies each webhook with the subscription's secret, as
// GET /api/subscriptions/{id}/secret gives it, before it trusts the body.
func ExampleVerifier_VerifyHeaders() {
	secret, err := signature.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	verifier := signature.Verifier{Secrets: []signature.Secret{secret}}

	receiver := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := verifier.VerifyHeaders(r.Header.Get, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent) // any 2xx: delivered
	}

	// What the dispatcher sends, signed now.
	body := `{"id":"evt_1","type":"ticket.updated","tenantId":"ten_1","data":{"ticket":42}}`
	send := func(sig string) int {
		rq := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body))
		now := time.Now()
		rq.Header.Set(signature.HeaderID, "evt_1")
		rq.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		if sig == "" {
			sig = signature.Sign(secret, "evt_1", now, []byte(body))
		}
		rq.Header.Set(signature.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		receiver(rec, rq)
		return rec.Code
	}
	fmt.Println("signed:", send(""))
	fmt.Println("forged:", send("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	// Output:
	// signed: 204
	// forged: 401
}

// A subscription with "signatureScheme": "v1a" is verified with its public
// key ("whpk_..."), which GET /api/subscriptions/{id}/secret answers: the
// receiver holds nothing that could sign.
func ExampleVerifier_Verify_publicKey() {
	signing := signature.NewSigningKey() // the server's half; it never leaves it
	published := signing.PublicKey().String()

	key, err := signature.ParsePublicKey(published)
	if err != nil {
		panic(err)
	}
	verifier := signature.Verifier{PublicKeys: []signature.PublicKey{key}}

	body := []byte(`{"id":"evt_2","type":"ticket.created","data":{}}`)
	now := time.Now()
	header := signature.Sign(signing, "evt_2", now, body)
	ts := strconv.FormatInt(now.Unix(), 10)

	fmt.Println(strings.HasPrefix(header, "v1a,"))
	fmt.Println(verifier.Verify("evt_2", ts, header, body))
	fmt.Println(verifier.Verify("evt_2", ts, header, []byte(`{"tampered":true}`)))
	// Output:
	// true
	// <nil>
	// no matching webhook signature
}
