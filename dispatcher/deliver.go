package dispatcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/opevents"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// Bounds on a receiver's Retry-After.
const (
	minRetryAfter = time.Second
	maxRetryAfter = 24 * time.Hour
)

// drainLimit is how much of a response body is read to keep the connection
// reusable; past it, the connection is closed instead.
const drainLimit = 64 << 10

// excerptBuf is what an answer's excerpt is read into; a worker reuses
// its own (see webhook).
type excerptBuf = [deliverylog.MaxResponseExcerpt]byte

// result is what one HTTP attempt came to.
type result struct {
	status     int
	err        string
	excerpt    string
	retryAfter time.Duration
	duration   time.Duration
	// cut: the attempt was cut short by a shutdown; it counts as none.
	cut bool
	// unreachable: the transport failed (a timeout, a connection refused,
	// reset or closed, TLS, DNS), not a refusal before dialling.
	unreachable bool
	// shed: not sent, its destination's breaker was open.
	shed bool
}

func (r result) ok() bool { return r.err == "" && r.status >= 200 && r.status < 300 }

// errBreakerOpen is the attempt's error when it was not sent because its
// destination's breaker was open.
const errBreakerOpen = "not sent: the destination is failing (timeouts or connection failures in a row); it is probed and this delivery retried on the schedule"

// destinationOutcome is what r says of its destination: whether it
// answered, asked for less (429, 503), or could not be reached in time.
func (r result) destinationOutcome() destination.Outcome {
	switch {
	case r.cut:
		return destination.Unknown
	case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
		return destination.Overloaded
	case r.status != 0:
		return destination.Answered
	case r.unreachable:
		return destination.Failed
	}
	return destination.Unknown // refused before dialling, an invalid URL
}

// Outcome labels of webhooks_attempts_total.
const (
	outcomeSucceeded = "succeeded"
	outcomeRetrying  = "retrying"
	outcomeFailed    = "failed"
	outcomeSkipped   = "skipped"
	outcomeDropped   = "dropped"
)

// runWorker takes deliveries from the queue and attempts them, until the
// queue closes or one of its attempts runs past the time a worker is lent
// for (Config.LendFor): then another worker takes its place in the pool
// and this one ends with its attempt. An endpoint that hangs so holds a
// goroutine and a socket, within its tenant's and its destination's
// bounds, never a worker of the pool that other tenants share.
func (d *Dispatcher) runWorker() {
	defer d.workers.Done()
	w := d.newWorker()
	defer w.close()
	for {
		dl, ok := d.queue.next()
		if !ok {
			return
		}
		w.lendFor(dl)
		d.attempt(w, dl)
		dl.demoted = w.returned()
		// An endpoint slower than its queue assumed: what no longer fits
		// is parked, stored once, to be read back at its pace.
		for _, late := range d.queue.done(dl) {
			d.park(late, laneUnordered)
		}
		if dl.demoted {
			return
		}
	}
}

// attempt makes one try of a delivery and commits its outcome: the log
// record, and what the outcome needs stored with it (a schedule, events
// for the tenant); the delivery is settled once they are stored. w is
// the worker making it.
func (d *Dispatcher) attempt(w *worker, dl *delivery) {
	sub, err := d.subscription(d.runCtx, dl.tenant, dl.sub)
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		// Deleted: deliveries not yet made to it are dropped.
		d.m.attempts.WithLabelValues(outcomeDropped).Inc()
		d.settle(dl, nil)
		return
	case err != nil:
		d.logger.Warn("deliver: look up the subscription; delivery handed back", "subscription", dl.sub, "err", err)
		d.release(dl)
		return
	}
	if !sub.Active && !dl.manual {
		d.m.attempts.WithLabelValues(outcomeSkipped).Inc()
		d.commit(dl, dl.record(deliverylog.StatusSkipped), nil)
		return
	}
	now := d.cfg.Now().UTC()
	var res result
	// The attempt's trace context: its span's when tracing is on, else a
	// fresh span id in the event's trace.
	var span trace.Span
	sc := dl.ev.trace
	if dl.shed {
		// Its destination's breaker is open: not sent, and retried on the
		// schedule as any failure.
		d.m.shed.Inc()
		res = result{err: errBreakerOpen, shed: true}
	} else {
		if d.cfg.Tracer.Enabled() {
			span = d.attemptSpan(sub, dl)
			sc = span.SpanContext()
		} else {
			sc = tracing.Child(sc)
		}
		res = d.post(w, sub, dl, now, sc)
		dl.outcome = res.destinationOutcome()
	}
	if res.cut {
		if span != nil {
			span.SetStatus(codes.Error, "cut short by a shutdown; made again")
			span.End()
		}
		d.release(dl)
		return
	}
	if !dl.shed { // not sent: no duration to observe
		d.m.duration.Observe(res.duration.Seconds())
	}
	wait, more := d.cfg.wait(dl.attempt)
	o := decide(res, dl.manual, wait, more)
	rec := dl.record(o.status())
	rec.Attempt = &deliverylog.Attempt{
		N: dl.attempt, At: now, StatusCode: res.status, Error: res.err,
		DurationMs: res.duration.Milliseconds(), ResponseBody: res.excerpt,
		TraceID: [16]byte(sc.TraceID()),
	}
	if span != nil {
		endAttemptSpan(span, res, o, now)
	}
	ep := opevents.Endpoint{Tenant: dl.tenant, Subscription: dl.sub, URL: sub.URL}
	msgs := d.health(ep, res, o.verdict == delivered, now)
	switch o.verdict {
	case delivered:
		d.m.attempts.WithLabelValues(outcomeSucceeded).Inc()
		if dl.attempt == 1 && !dl.manual {
			d.m.endToEnd.Observe(time.Since(dl.created).Seconds())
		}
	case gone:
		d.m.attempts.WithLabelValues(outcomeFailed).Inc()
		msgs = append(msgs, d.disable(dl, ep, "endpoint answered 410 Gone", now)...)
	case manualFailed:
		d.m.attempts.WithLabelValues(outcomeFailed).Inc()
	case givenUp:
		d.m.attempts.WithLabelValues(outcomeFailed).Inc()
		msgs = append(msgs, d.givenUp(dl, ep, now)...)
	case retryLater:
		d.m.attempts.WithLabelValues(outcomeRetrying).Inc()
		at := now.Add(o.wait)
		rec.NextAttemptAt = &at
		if dl.ordered {
			// The head of a FIFO lane blocks the rest: handed back with the
			// wait, it stays the lane's one outstanding record.
			d.commitThen(rec, msgs, func(err error) {
				if err != nil {
					d.settle(dl, err)
					return
				}
				d.held.remove(dl.parked)
				d.settleMsg(dl.parked, opNak, max(o.wait, time.Millisecond))
			})
			return
		}
		next := *dl
		next.attempt, next.manual = dl.attempt+1, false
		msgs = append(msgs, scheduleMsg(&next, at))
		if o.wait < parkerIdle {
			// Keep the lane's reader for it; a later one is found by the scan.
			d.parkers.want(parkKey{tenant: dl.tenant, sub: dl.sub, lane: laneUnordered}, at)
		}
	}
	d.commit(dl, rec, msgs)
}

// health records an attempt's outcome against its endpoint's health and
// returns the events that tell the tenant and the operator of a change:
// subscription.failing when this attempt made the run of failures
// FailingAfter long, subscription.recovered at the first success after.
func (d *Dispatcher) health(ep opevents.Endpoint, res result, delivered bool, now time.Time) []*nats.Msg {
	h, change, err := d.store.RecordAttempt(d.runCtx, ep.Tenant, ep.Subscription, !delivered, now, d.cfg.failing())
	if err != nil {
		d.logger.Warn("record endpoint health", "subscription", ep.Subscription, "err", err)
		return nil
	}
	switch change {
	case subscriptions.NowFailing:
		return d.cfg.Operational.Msgs(opevents.Failing(ep, h, res.err, res.status))
	case subscriptions.Recovered:
		return d.cfg.Operational.Msgs(opevents.Recovered(ep, h, now))
	}
	return nil
}

// givenUp records a delivery given up against its endpoint's health and
// returns the events that tell the tenant: delivery.exhausted, and
// subscription.disabled if the endpoint is now disabled. Deliveries of
// those two types raise none, so a dead endpoint cannot feed a loop, and
// deliveries of the other operational events no delivery.exhausted.
func (d *Dispatcher) givenUp(dl *delivery, ep opevents.Endpoint, now time.Time) []*nats.Msg {
	if dl.ev.typ == events.TypeDeliveryExhausted || dl.ev.typ == events.TypeSubscriptionDisabled {
		return nil
	}
	var msgs []*nats.Msg
	if !events.Operational(dl.ev.typ) {
		msgs = d.cfg.Operational.Msgs(opevents.Exhausted(ep, dl.id, dl.ev.id, dl.ev.typ, dl.attempt, now))
	}
	disabled, err := d.store.RecordGivenUp(d.runCtx, dl.tenant, dl.sub, dl.created, now, d.cfg.Health)
	if err != nil {
		d.logger.Warn("record endpoint health", "subscription", dl.sub, "err", err)
	} else if disabled {
		msgs = append(msgs, d.disabledEvent(ep, "deliveries kept failing", now)...)
	}
	return msgs
}

// disable turns a subscription off after a 410 and returns the events
// that tell the tenant, if this call disabled it.
func (d *Dispatcher) disable(dl *delivery, ep opevents.Endpoint, reason string, now time.Time) []*nats.Msg {
	changed, err := d.store.Disable(d.runCtx, dl.tenant, dl.sub, reason)
	if err != nil {
		d.logger.Warn("disable subscription after 410", "subscription", dl.sub, "err", err)
		return nil
	}
	if !changed {
		return nil
	}
	return d.disabledEvent(ep, reason, now)
}

// disabledEvent tells the tenant and the operator a subscription was
// disabled.
func (d *Dispatcher) disabledEvent(ep opevents.Endpoint, reason string, now time.Time) []*nats.Msg {
	d.m.disabled.Inc()
	return d.cfg.Operational.Msgs(opevents.Disabled(ep, reason, now))
}

// subscription finds a subscription in the index (no I/O), and only when
// the index has none in storage (LoadSubscription, one round trip), so
// one that another replica just created is found; a change another
// replica just made may not be seen yet. subscriptions.ErrNotFound means
// it is gone.
func (d *Dispatcher) subscription(ctx context.Context, tenant, id string) (*subscriptions.Subscription, error) {
	if s, ok := d.store.Index().Subscription(tenant, id); ok {
		return s, nil
	}
	s, err := d.store.LoadSubscription(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// lookup reports whether a subscription exists; an error reading storage
// counts as existing, so nothing is dropped on a NATS hiccup.
func (d *Dispatcher) lookup(ctx context.Context, tenant, id string) (*subscriptions.Subscription, bool) {
	s, err := d.subscription(ctx, tenant, id)
	switch {
	case err == nil:
		return s, true
	case errors.Is(err, subscriptions.ErrNotFound):
		return nil, false
	}
	return &subscriptions.Subscription{ID: id, TenantID: tenant}, true
}

// attemptSpan starts the HTTP client span of an attempt, a child of the
// trace context its event was stored with: a retry, whenever and wherever
// it is made, is another span of the same trace.
func (d *Dispatcher) attemptSpan(sub *subscriptions.Subscription, dl *delivery) trace.Span {
	_, span := d.cfg.Tracer.Start(trace.ContextWithRemoteSpanContext(d.runCtx, dl.ev.trace), http.MethodPost,
		trace.WithSpanKind(trace.SpanKindClient))
	if !span.IsRecording() {
		return span
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", http.MethodPost),
		attribute.String("webhook.event.id", dl.ev.id),
		attribute.String("webhook.event.type", dl.ev.typ),
		attribute.String("webhook.tenant.id", dl.tenant),
		attribute.String("webhook.subscription.id", dl.sub),
		attribute.String("webhook.delivery.id", dl.id),
		attribute.Int("webhook.attempt", dl.attempt),
		attribute.Bool("webhook.manual", dl.manual),
	}
	if u, err := sub.Endpoint(); err == nil {
		// Scheme, host and path: a query may hold a token.
		full := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
		attrs = append(attrs, attribute.String("url.full", full.String()), attribute.String("server.address", u.Hostname()))
		if p, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, attribute.Int("server.port", p))
		} else if u.Scheme == "https" {
			attrs = append(attrs, attribute.Int("server.port", 443))
		} else {
			attrs = append(attrs, attribute.Int("server.port", 80))
		}
	}
	span.SetAttributes(attrs...)
	return span
}

// endAttemptSpan ends an attempt's span with its answer and what the
// dispatcher decided (the attempt-log record's outcome, as an event).
func endAttemptSpan(span trace.Span, res result, o outcome, now time.Time) {
	if span.IsRecording() {
		if res.status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", res.status))
		}
		if !res.ok() {
			errType := res.err
			if res.status != 0 {
				errType = strconv.Itoa(res.status)
			}
			span.SetAttributes(attribute.String("error.type", errType))
			span.SetStatus(codes.Error, res.err)
		}
		ev := []attribute.KeyValue{attribute.String("webhook.outcome", o.status())}
		if o.verdict == retryLater {
			ev = append(ev, attribute.String("webhook.next_attempt_at", now.Add(o.wait).Format(time.RFC3339Nano)))
		}
		span.AddEvent("attempt recorded", trace.WithAttributes(ev...))
	}
	span.End()
}

// post signs and sends the delivery's body to the subscription's URL,
// with sc as its traceparent unless the subscription turned that off.
func (d *Dispatcher) post(wk *worker, sub *subscriptions.Subscription, dl *delivery, now time.Time, sc trace.SpanContext) result {
	u, err := sub.Endpoint()
	if err != nil {
		return result{err: "invalid url"}
	}
	ctx := wk.start()
	defer wk.finish()
	w := wk.hook
	// The request is built from the URL the index parsed, and sent by the
	// transport itself: an http.Client would copy its headers and URL for
	// redirects, which are never followed.
	// The body is a NopCloser over a bytes.Reader, a reader the transport
	// knows to be in memory: it writes the headers and the body in one
	// write, where with another it would flush the headers first.
	body := dl.ev.body
	req := (&http.Request{
		Method: http.MethodPost, URL: u, Host: u.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.build(sub, dl, now, sc, d.cfg.UserAgent),
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}).WithContext(ctx)
	d.m.inflight.Inc()
	start := time.Now()
	resp, err := d.send(ctx, sub, req)
	d.m.inflight.Dec()
	if err != nil {
		if d.runCtx.Err() != nil {
			return result{cut: true}
		}
		// The attempt's timeout counts as one whichever error the
		// transport gave for it (the cause, or context.Canceled).
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		return result{err: describe(ctx, err), duration: time.Since(start),
			unreachable: !errors.Is(err, egress.ErrInternal) && (timedOut || !errors.Is(err, context.Canceled)) && !isTokenError(err)}
	}
	n, err := io.ReadFull(resp.Body, w.excerpt[:])
	r := result{status: resp.StatusCode}
	if n > 0 {
		r.excerpt = string(w.excerpt[:n])
	}
	if err == nil { // more than the excerpt: drained, up to drainLimit
		drain(resp.Body, w.excerpt[:])
	}
	resp.Body.Close()
	r.duration = time.Since(start)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	if !r.ok() && r.status != http.StatusGone {
		r.err = "endpoint answered " + strconv.Itoa(resp.StatusCode)
	}
	return r
}

// drain reads body through buf, up to drainLimit, so that its connection
// can carry the next request; a longer body is left for Close, which
// closes the connection instead.
func drain(body io.Reader, buf []byte) {
	for read := 0; read < drainLimit; {
		n, err := body.Read(buf[:min(len(buf), drainLimit-read)])
		read += n
		if err != nil {
			return
		}
	}
}

// describe turns a transport error into a short message for the tenant,
// without internal detail.
func describe(ctx context.Context, err error) string {
	var te *endpointauth.TokenError
	if errors.As(err, &te) {
		if te.Unreachable() {
			return "oauth2 token: " + describe(ctx, te.Err)
		}
		return te.Error()
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled by shutdown"
	}
	var (
		timeout interface{ Timeout() bool }
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		opErr   *net.OpError
	)
	switch {
	case errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case errors.Is(err, egress.ErrInternal):
		return "destination refused: internal address"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &certErr):
		return "TLS certificate error"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// An alert from the endpoint: most often a client certificate it
		// requires was not given, or not accepted.
		return "TLS error: the endpoint refused the handshake (a client certificate it requires missing or not accepted)"
	case errors.As(err, &recErr), errors.As(err, &alert):
		return "TLS error"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by endpoint"
	}
	return "request failed"
}

// parseRetryAfter reads seconds or an HTTP date, bounded to sane values;
// zero means absent or unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0
	}
	return min(max(d, minRetryAfter), maxRetryAfter)
}
