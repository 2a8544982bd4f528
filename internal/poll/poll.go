// Package poll is the one way tests of this module wait for a condition:
// they check it until it holds or a deadline passes, never sleeping for a
// guessed time.
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
