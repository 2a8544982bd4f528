package dispatcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/subscriptions"
)

// Bounds on a receiver's Retry-After.
const (
	minRetryAfter = time.Second
	maxRetryAfter = 24 * time.Hour
)

// drainLimit is how much of a response body is read to keep the connection
// reusable; past it, the connection is closed instead.
const drainLimit = 64 << 10

// result is what one HTTP attempt came to.
type result struct {
	status     int
	err        string
	excerpt    string
	retryAfter time.Duration
	duration   time.Duration
}

func (r result) ok() bool   { return r.err == "" && r.status >= 200 && r.status < 300 }
func (r result) gone() bool { return r.status == http.StatusGone }

// attempt makes one try of a task and settles it: success is acked; a
// failure with attempts left is acked with its next attempt scheduled in
// JetStream; the last failure is acked as given up. The delivery's snapshot
// (every attempt so far) is stored before the ack.
func (d *Dispatcher) attempt(t *task) {
	sub, ok := d.subscription(t)
	if !ok {
		return
	}
	now := d.cfg.Now().UTC()
	dlv := Delivery{
		ID: t.delivery, EventID: t.eventID, EventType: t.eventType, SubscriptionID: t.sub,
		TenantID: t.tenant, Attempts: t.history, CreatedAt: t.created, EventSeq: t.eventSeq,
	}
	if !sub.Active && !t.manual {
		dlv.Status = StatusSkipped
		d.m.attempts.WithLabelValues(StatusSkipped).Inc()
		d.finish(t, []*nats.Msg{dlv.msg()})
		return
	}

	res := d.post(sub, t, now)
	dlv.Attempts = append(slices.Clip(t.history), Attempt{
		At: now, StatusCode: res.status, Error: res.err, ResponseBody: res.excerpt, DurationMs: res.duration.Milliseconds(),
	})
	d.m.latency.Observe(res.duration.Seconds())

	msgs := make([]*nats.Msg, 0, 3)
	var retryIn time.Duration // an ordered task is retried in place, after this
	switch {
	case res.ok():
		dlv.Status = StatusSucceeded
		d.m.attempts.WithLabelValues(StatusSucceeded).Inc()
		if t.attempt == 1 && !t.created.IsZero() {
			d.m.endToEnd.Observe(time.Since(t.created).Seconds())
		}
		if err := d.store.RecordSuccess(d.runCtx, t.tenant, t.sub); err != nil {
			d.logger.Warn("record endpoint health", "subscription", t.sub, "err", err)
		}
	case res.gone():
		dlv.Status = StatusFailed
		d.m.attempts.WithLabelValues(StatusFailed).Inc()
		changed, err := d.store.Disable(d.runCtx, t.tenant, t.sub, "endpoint answered 410 Gone")
		if err != nil {
			d.logger.Warn("disable subscription after 410", "subscription", t.sub, "err", err)
		} else if changed {
			msgs = append(msgs, d.disabledEvent(t, "endpoint answered 410 Gone", now))
		}
	default:
		wait, more := d.cfg.wait(t.attempt)
		if t.manual || !more {
			dlv.Status = StatusFailed
			d.m.attempts.WithLabelValues(StatusFailed).Inc()
			if !t.manual {
				msgs = append(msgs, d.givenUp(t, &dlv, now)...)
			}
			break
		}
		if res.retryAfter > 0 {
			wait = res.retryAfter
		}
		at := now.Add(wait)
		dlv.Status, dlv.NextAttemptAt = StatusPending, &at
		d.m.attempts.WithLabelValues("retrying").Inc()
		if t.ordered {
			// The head of a FIFO subscription blocks the rest: it stays the
			// consumer's one pending message until its next attempt.
			retryIn = max(wait, time.Millisecond)
			break
		}
		next := *t
		next.attempt, next.history = t.attempt+1, dlv.Attempts
		// One schedule per attempt: a crash that repeats this attempt
		// publishes the same id, which JetStream stores once.
		msgs = append(msgs, retryMsg(&next, at, "a"+strconv.Itoa(next.attempt), t.msg.Data()))
	}
	msgs = append(msgs, dlv.msg())
	d.settleAfter(t, msgs, retryIn)
}

// givenUp records a delivery given up against its endpoint's health and
// returns the events that tell the tenant: delivery.exhausted, and
// subscription.disabled if the endpoint is now disabled. Deliveries of
// those two types raise none, so a dead endpoint cannot feed a loop.
func (d *Dispatcher) givenUp(t *task, dlv *Delivery, now time.Time) []*nats.Msg {
	if t.eventType == events.TypeDeliveryExhausted || t.eventType == events.TypeSubscriptionDisabled {
		return nil
	}
	data, _ := json.Marshal(map[string]any{
		"deliveryId": dlv.ID, "subscriptionId": dlv.SubscriptionID, "eventId": dlv.EventID,
		"eventType": dlv.EventType, "attempts": len(dlv.Attempts),
	})
	e := events.Event{ID: events.NewID(), Type: events.TypeDeliveryExhausted, TenantID: t.tenant, OccurredAt: now, Data: data}
	msgs := []*nats.Msg{e.Msg(false)}
	disabled, err := d.store.RecordGivenUp(d.runCtx, t.tenant, t.sub, t.created, now, d.cfg.Health)
	if err != nil {
		d.logger.Warn("record endpoint health", "subscription", t.sub, "err", err)
	} else if disabled {
		msgs = append(msgs, d.disabledEvent(t, "deliveries kept failing", now))
	}
	return msgs
}

// disabledEvent tells the tenant a subscription was disabled.
func (d *Dispatcher) disabledEvent(t *task, reason string, now time.Time) *nats.Msg {
	d.m.disabled.Inc()
	data, _ := json.Marshal(map[string]string{"subscriptionId": t.sub, "reason": reason})
	e := events.Event{ID: events.NewID(), Type: events.TypeSubscriptionDisabled, TenantID: t.tenant, OccurredAt: now, Data: data}
	return e.Msg(false)
}

// subscription finds the task's subscription in the index, or in storage if
// the index may lag another replica's write. A task of a deleted
// subscription is dropped.
func (d *Dispatcher) subscription(t *task) (*subscriptions.Subscription, bool) {
	if s, ok := d.store.Index().Subscription(t.tenant, t.sub); ok {
		return s, true
	}
	s, err := d.store.LoadSubscription(d.runCtx, t.tenant, t.sub)
	switch {
	case err == nil:
		return &s, true
	case errors.Is(err, subscriptions.ErrNotFound):
		d.m.attempts.WithLabelValues("dropped").Inc()
		_ = t.msg.Ack()
	default:
		d.logger.Warn("deliver: load subscription; task handed back", "subscription", t.sub, "err", err)
		_ = t.msg.NakWithDelay(5 * time.Second)
	}
	return nil, false
}

// finish stores msgs and acks the task once they are stored.
func (d *Dispatcher) finish(t *task, msgs []*nats.Msg) { d.settleAfter(t, msgs, 0) }

// settleAfter stores msgs, then acks the task, or, with retryIn, hands it
// back to be delivered again after that long.
func (d *Dispatcher) settleAfter(t *task, msgs []*nats.Msg, retryIn time.Duration) {
	futures, err := events.PublishAsync(d.runCtx, d.js, msgs)
	if err != nil {
		d.logger.Warn("deliver: log attempt; task handed back", "delivery", t.delivery, "err", err)
		_ = t.msg.NakWithDelay(time.Second)
		return
	}
	d.settle <- settlement{msg: t.msg, futures: futures, retryIn: retryIn}
}

// post signs and sends the task's body to the subscription's URL.
func (d *Dispatcher) post(sub *subscriptions.Subscription, t *task, now time.Time) result {
	ctx, cancel := context.WithTimeout(d.runCtx, d.cfg.Timeout)
	defer cancel()
	body := t.msg.Data()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: "invalid url"}
	}
	req.Header = http.Header{
		"Content-Type": {"application/json"},
		"User-Agent":   {d.cfg.UserAgent},
		// Standard Webhooks headers, lower-case as the specification writes them.
		signature.HeaderID:        {t.eventID},
		signature.HeaderTimestamp: {strconv.FormatInt(now.Unix(), 10)},
		signature.HeaderSignature: {signature.SignAll(sub.SigningSecrets(now), t.eventID, now, body)},
	}
	d.m.inflight.Inc()
	start := time.Now()
	resp, err := d.client.Do(req)
	d.m.inflight.Dec()
	if err != nil {
		return result{err: describe(ctx, err), duration: time.Since(start)}
	}
	excerpt := make([]byte, MaxResponseExcerpt)
	n, _ := io.ReadFull(resp.Body, excerpt)
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
	r := result{status: resp.StatusCode, excerpt: string(excerpt[:n]), duration: time.Since(start)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	if !r.ok() && !r.gone() {
		r.err = "endpoint answered " + strconv.Itoa(resp.StatusCode)
	}
	return r
}

// describe turns a transport error into a short message for the tenant,
// without internal detail.
func describe(ctx context.Context, err error) string {
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
