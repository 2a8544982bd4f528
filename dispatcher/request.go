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

// webhook is what one attempt's request is built of besides its body: its
// header map, the values' slices, and the buffer the values are written
// into, then the buffer the answer's excerpt is read into. A worker
// reuses its webhook once the answer's body is closed, when, by the
// http.RoundTripper contract, the transport no longer reads the request;
// an attempt that failed in the transport leaves its webhook to the
// garbage collector.
type webhook struct {
	header  http.Header
	values  []string
	text    []byte
	secrets []signature.Secret
	excerpt excerptBuf
}

// Room in a webhook for the header values it sends besides a
// subscription's own: content type, user agent, the three Standard
// Webhooks headers, traceparent and tracestate.
const fixedHeaders = 7

func newWebhook() *webhook {
	return &webhook{header: make(http.Header, fixedHeaders), values: make([]string, 0, fixedHeaders), text: make([]byte, 0, 256)}
}

// set sets the header name (as given: the Standard Webhooks headers are
// lower case) to value, a slice of w's values.
func (w *webhook) set(name, value string) {
	i := len(w.values)
	w.values = append(w.values, value)
	w.header[name] = w.values[i : i+1 : i+1]
}

// build fills w's header for an attempt of dl to sub made at now with
// trace context sc: what a receiver gets, as post always sent it. The
// values written here (timestamp, signatures, traceparent) share one
// string.
func (w *webhook) build(sub *subscriptions.Subscription, dl *delivery, now time.Time, sc trace.SpanContext, userAgent string) http.Header {
	clear(w.header)
	custom := sub.Headers()
	if n := fixedHeaders + len(custom); cap(w.values) < n {
		w.values = make([]string, 0, n)
	}
	w.values = w.values[:0]
	// The values written: "<timestamp><signatures><traceparent>".
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

	w.set("Content-Type", "application/json")
	w.set("User-Agent", userAgent)
	// Standard Webhooks headers, lower-case as the specification writes them.
	w.set(signature.HeaderID, dl.ev.id)
	w.set(signature.HeaderTimestamp, text[:tsEnd])
	w.set(signature.HeaderSignature, text[tsEnd:sigEnd])
	if traceparent {
		w.set(tracing.Header, text[sigEnd:])
		if ts := sc.TraceState(); ts.Len() > 0 {
			w.set(tracing.StateHeader, ts.String())
		}
	}
	for name, value := range custom { // the subscription's own; never one of the above
		w.set(http.CanonicalHeaderKey(name), value)
	}
	return w.header
}
