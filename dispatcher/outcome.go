package dispatcher

import (
	"net/http"
	"time"

	"github.com/onestack/webhooks/deliverylog"
)

// verdict is what an attempt's result means for its delivery.
type verdict int

const (
	// delivered: a 2xx; the delivery succeeded.
	delivered verdict = iota
	// retryLater: another attempt is due after outcome.wait.
	retryLater
	// givenUp: the last attempt failed; the delivery has failed.
	givenUp
	// gone: the endpoint answered 410; the delivery failed and the
	// subscription is disabled.
	gone
	// manualFailed: an attempt asked for by hand failed; it gets no
	// schedule after it.
	manualFailed
)

// outcome is the decision taken on one attempt.
type outcome struct {
	verdict verdict
	// wait is the delay before the next attempt (retryLater only).
	wait time.Duration
}

// status is the delivery's status after the outcome.
func (o outcome) status() string {
	switch o.verdict {
	case delivered:
		return deliverylog.StatusSucceeded
	case retryLater:
		return deliverylog.StatusPending
	}
	return deliverylog.StatusFailed
}

// decide is the pure rule of what an attempt comes to, from its result,
// whether it was asked for by hand, and the wait the schedule gives before
// the next attempt (more false when this one was the last). A receiver's Retry-After on 429 or 503 (res.retryAfter) replaces
// the schedule's wait, but never adds an attempt the schedule lacks.
func decide(res result, manual bool, wait time.Duration, more bool) outcome {
	switch {
	case res.ok():
		return outcome{verdict: delivered}
	case res.status == http.StatusGone:
		return outcome{verdict: gone}
	case manual && !res.shed:
		// One attempt by hand, sent and failed. One shed by an open
		// breaker was never sent: it waits the schedule like any other.
		return outcome{verdict: manualFailed}
	case !more:
		return outcome{verdict: givenUp}
	}
	if res.retryAfter > 0 {
		wait = res.retryAfter
	}
	return outcome{verdict: retryLater, wait: wait}
}
