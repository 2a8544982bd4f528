package dispatcher

import (
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// webhook is a worker's scratch space for its attempts' requests: the
// buffer the header values it computes are written into, the secrets
// that sign, and the buffer an answer's excerpt is read into. Nothing in
// it is handed to the transport, which may still read a request after
// its answer came (a receiver that answers before it was sent to), so a
// worker reuses it from attempt to attempt: each request gets a header
// map and values of its own.
type webhook struct {
	text    []byte
	secrets []signature.Secret
	excerpt excerptBuf
}

// Room for the header values a webhook sends besides a subscription's
// own: content type, user agent, the three Standard Webhooks headers,
// traceparent and tracestate.
const fixedHeaders = 7

func newWebhook() *webhook { return &webhook{text: make([]byte, 0, 256)} }

// headers is a request's header map being filled, its values' slices
// cut from one array.
type headers struct {
	h      http.Header
	values []string
}

// set sets the header name (as given: the Standard Webhooks headers are
// lower case) to value.
func (hs *headers) set(name, value string) {
	i := len(hs.values)
	hs.values = append(hs.values, value)
	hs.h[name] = hs.values[i : i+1 : i+1]
}

// build returns the header of an attempt of dl to sub made at now with
// trace context sc: what a receiver gets, as post always sent it. The
// values computed here (timestamp, signatures, traceparent) share one
// string, written in w's buffer.
func (w *webhook) build(sub *subscriptions.Subscription, dl *delivery, now time.Time, sc trace.SpanContext, userAgent string) http.Header {
	custom := sub.Headers()
	n := fixedHeaders + len(custom)
	hs := headers{h: make(http.Header, n), values: make([]string, 0, n)}
	// The values computed: "<timestamp><signatures><traceparent>".
	unix := now.Unix()
	t := strconv.AppendInt(w.text[:0], unix, 10)
	tsEnd := len(t)
	w.secrets = sub.AppendSigningSecrets(w.secrets[:0], now)
	t = signature.AppendAll(t, w.secrets, dl.ev.id, unix, dl.ev.body)
	clear(w.secrets) // no key kept past the attempt
	sigEnd := len(t)
	traceparent := sub.SendsTraceparent()
	if traceparent {
		t = tracing.Append(t, sc)
	}
	w.text = t
	text := string(t)

	hs.set("Content-Type", "application/json")
	hs.set("User-Agent", userAgent)
	// Standard Webhooks headers, lower-case as the specification writes them.
	hs.set(signature.HeaderID, dl.ev.id)
	hs.set(signature.HeaderTimestamp, text[:tsEnd])
	hs.set(signature.HeaderSignature, text[tsEnd:sigEnd])
	if traceparent {
		hs.set(tracing.Header, text[sigEnd:])
		if ts := sc.TraceState(); ts.Len() > 0 {
			hs.set(tracing.StateHeader, ts.String())
		}
	}
	for name, value := range custom { // the subscription's own; never one of the above
		hs.set(http.CanonicalHeaderKey(name), value)
	}
	return hs.h
}
