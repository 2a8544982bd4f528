// Package poll is the one way tests of this module wait for a condition
// or a value: they check it until it holds, or wait on its channel, until
// a deadline passes, never sleeping for a guessed time.
package poll

import (
	"testing"
	"time"
)

// Every is how often a condition is checked.
const Every = 5 * time.Millisecond

// Until checks cond every few milliseconds until it returns true, and fails
// the test, naming what, if it does not within limit.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(limit, cond) {
		t.Fatalf("%s: not within %v", what, limit)
	}
}

// Within checks cond every few milliseconds until it returns true or limit
// passes, and reports whether it held.
func Within(limit time.Duration, cond func() bool) bool {
	return WithinEvery(limit, Every, cond)
}

// WithinEvery is Within checking cond every interval: for a condition
// that costs something to check, such as a request counted against a
// tenant's rate limit.
func WithinEvery(limit, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Receive waits up to limit for a value from ch and returns it, failing the
// test, naming what, if none comes. A closed channel gives its zero value.
func Receive[T any](t testing.TB, limit time.Duration, what string, ch <-chan T) T {
	t.Helper()
	v, ok := ReceiveWithin(limit, ch)
	if !ok {
		t.Fatalf("%s: not within %v", what, limit)
	}
	return v
}

// ReceiveWithin waits up to limit for a value from ch, and reports whether
// one came (a closed channel gives its zero value and true): for a test
// that has more to do than fail when none does.
func ReceiveWithin[T any](limit time.Duration, ch <-chan T) (T, bool) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v, true
	case <-timer.C:
		var zero T
		return zero, false
	}
}
