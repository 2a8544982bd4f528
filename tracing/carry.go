package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// StateHeader is the W3C tracestate header, kept beside traceparent when
// tracing is on.
const StateHeader = "tracestate"

// httpHeader is Header as http.Header keys it. Read under that key, the
// request's traceparent is found without Header.Get canonicalizing
// "traceparent" into a new string on every request.
const httpHeader = "Traceparent"

// Stamp writes into h (a NATS message's or an HTTP request's headers) the
// trace context an event is stored with: ctx's span context when it has a
// valid one (the publish span, or a producer's traceparent), else a fresh
// trace of its own (sampled as a root when tracing is on), so every
// attempt of the event shares one trace id. It works the same, without
// the SDK, when t is nil.
func (t *Tracer) Stamp(ctx context.Context, h map[string][]string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		sc = t.Rooted(Fresh())
	}
	h[Header] = []string{Format(sc)}
	if t != nil && sc.TraceState().Len() > 0 {
		h[StateHeader] = []string{sc.TraceState().String()}
	}
}

// Stored returns the trace context an event was stored with in its
// message headers h, or, for an event stored without a valid one, the one
// FromKey derives from its tenant and id (sampled as a root when tracing
// is on).
func (t *Tracer) Stored(h map[string][]string, tenant, id string) trace.SpanContext {
	if v := h[Header]; len(v) > 0 {
		if sc, ok := Parse(v[0]); ok {
			if s := h[StateHeader]; len(s) > 0 {
				if ts, err := trace.ParseTraceState(s[0]); err == nil {
					sc = sc.WithTraceState(ts)
				}
			}
			return sc
		}
	}
	return t.Rooted(FromKey(tenant + ":" + id))
}

// ServerSpan continues the trace of an incoming request: its traceparent
// (and tracestate) become the parent of the request's server span, named
// name (method and route), when tracing is on; off, a valid traceparent is
// only carried in the request's context, so what it publishes joins the
// producer's trace. Call end with the answer's status.
func (t *Tracer) ServerSpan(r *http.Request, name, route string) (_ *http.Request, end func(status int)) {
	if t == nil {
		if v := r.Header[httpHeader]; len(v) > 0 && v[0] != "" {
			if sc, ok := Parse(v[0]); ok {
				r = r.WithContext(trace.ContextWithRemoteSpanContext(r.Context(), sc))
			}
		}
		return r, func(int) {}
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
			attribute.String("url.scheme", scheme),
			attribute.String("server.address", r.Host),
			attribute.String("client.address", r.RemoteAddr),
			attribute.String("user_agent.original", r.UserAgent()),
		)
	}
	return r.WithContext(ctx), func(status int) {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetAttributes(attribute.String("error.type", http.StatusText(status)))
				span.SetStatus(codes.Error, "")
			}
		}
		span.End()
	}
}
