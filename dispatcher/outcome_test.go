package dispatcher

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		res    result
		manual bool
		wait   time.Duration
		more   bool
		want   outcome
	}{
		{"2xx delivers", result{status: 204}, false, time.Second, true, outcome{verdict: delivered}},
		{"2xx on the last attempt delivers", result{status: 200}, false, 0, false, outcome{verdict: delivered}},
		{"410 disables, even with attempts left", result{status: 410}, false, time.Second, true, outcome{verdict: gone}},
		{"410 by hand disables too", result{status: 410}, true, 0, false, outcome{verdict: gone}},
		{"500 with attempts left waits the schedule", result{status: 500, err: "endpoint answered 500"}, false, 5 * time.Second, true, outcome{verdict: retryLater, wait: 5 * time.Second}},
		{"3xx is a failure", result{status: 302, err: "endpoint answered 302"}, false, time.Second, true, outcome{verdict: retryLater, wait: time.Second}},
		{"timeout with attempts left", result{err: "timeout"}, false, time.Minute, true, outcome{verdict: retryLater, wait: time.Minute}},
		{"429 Retry-After replaces the wait", result{status: 429, err: "endpoint answered 429", retryAfter: time.Hour}, false, 5 * time.Second, true, outcome{verdict: retryLater, wait: time.Hour}},
		{"Retry-After adds no attempt", result{status: 503, err: "endpoint answered 503", retryAfter: time.Hour}, false, 0, false, outcome{verdict: givenUp}},
		{"the last failure gives up", result{status: 500, err: "endpoint answered 500"}, false, 0, false, outcome{verdict: givenUp}},
		{"a failed manual attempt schedules nothing", result{status: 500, err: "endpoint answered 500"}, true, time.Second, true, outcome{verdict: manualFailed}},
		{"a manual attempt shed by an open breaker waits the schedule", result{err: errBreakerOpen, shed: true}, true, time.Minute, true, outcome{verdict: retryLater, wait: time.Minute}},
		{"a manual attempt shed past the schedule gives up", result{err: errBreakerOpen, shed: true}, true, 0, false, outcome{verdict: givenUp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.res, tt.manual, tt.wait, tt.more); got != tt.want {
				t.Errorf("decide(%+v, manual %v, wait %v, more %v) = %+v, want %+v", tt.res, tt.manual, tt.wait, tt.more, got, tt.want)
			}
		})
	}
}
