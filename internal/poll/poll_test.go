package poll

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestWithinEvery: a condition that comes true before the limit is seen at
// the first check after it; one that never does is given up at the first
// check past the limit.
// The clock is synctest's, so the checks fall exactly on the interval.
func TestWithinEvery(t *testing.T) {
	tests := []struct {
		name       string
		trueAfter  time.Duration // cond holds from then on; 0: from the start
		never      bool
		limit      time.Duration
		every      time.Duration
		want       bool
		wantChecks int
	}{
		{"holds at once", 0, false, time.Second, 100 * time.Millisecond, true, 1},
		{"holds before the limit", 250 * time.Millisecond, false, time.Second, 100 * time.Millisecond, true, 4},
		{"never holds", 0, true, time.Second, 100 * time.Millisecond, false, 12},
		{"holds only past the limit", 2 * time.Second, false, time.Second, 100 * time.Millisecond, false, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				checks := 0
				got := WithinEvery(tt.limit, tt.every, func() bool {
					checks++
					return !tt.never && time.Since(start) >= tt.trueAfter
				})
				if got != tt.want || checks != tt.wantChecks {
					t.Errorf("WithinEvery(%v, %v) = %v after %d checks, want %v after %d", tt.limit, tt.every, got, checks, tt.want, tt.wantChecks)
				}
			})
		})
	}
}

// TestReceiveWithin: a value sent before the limit is returned; none sent,
// or sent too late, is reported false with the zero value; a closed
// channel gives its zero value at once.
func TestReceiveWithin(t *testing.T) {
	tests := []struct {
		name   string
		sendAt time.Duration // when 7 is sent; negative: never
		close  bool
		want   int
		wantOK bool
	}{
		{"sent before the limit", 300 * time.Millisecond, false, 7, true},
		{"never sent", -1, false, 0, false},
		{"sent past the limit", 2 * time.Second, false, 0, false},
		{"closed", -1, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ch := make(chan int, 1)
				if tt.close {
					close(ch)
				}
				if tt.sendAt >= 0 {
					go func() {
						time.Sleep(tt.sendAt) // synctest's clock: no real wait
						ch <- 7
					}()
				}
				got, ok := ReceiveWithin(time.Second, ch)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("ReceiveWithin(1s) = %d, %v, want %d, %v", got, ok, tt.want, tt.wantOK)
				}
				if !ok && tt.sendAt >= 0 {
					<-ch // the late send, so the bubble ends with nothing blocked
				}
			})
		})
	}
}

// TestReceive: the value comes back; a test that waits in vain fails
// naming what it waited for.
func TestReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan string, 1)
		ch <- "hit"
		if got := Receive(t, time.Second, "a hit", ch); got != "hit" {
			t.Errorf("Receive = %q, want %q", got, "hit")
		}
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Receive(rec, time.Second, "a second hit", ch)
		}()
		<-done
		if want := "a second hit: not within 1s"; rec.fatal != want {
			t.Errorf("Receive on an empty channel failed with %q, want %q", rec.fatal, want)
		}
	})
}

// recorder stands in for a test, keeping what Fatalf was given and
// ending the goroutine as a real Fatalf would.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
