package limiter

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWriteHeaders(t *testing.T) {
	reset := time.Date(2026, 11, 26, 10, 1, 7, 0, time.UTC)
	for _, tc := range []struct {
		d      Decision
		refund int
		want   http.Header
	}{
		{Decision{Allowed: true, Limit: 600, Remaining: 599, Reset: reset, RetryAfter: 37}, 0, http.Header{
			"X-Ratelimit-Limit": {"600"}, "X-Ratelimit-Remaining": {"599"}, "X-Ratelimit-Reset": {"1795687267"},
			"Ratelimit-Policy": {`"tenant";q=600;w=60`}, "Ratelimit": {`"tenant";r=599;t=37`},
		}},
		{Decision{Allowed: true, Limit: 1, Remaining: 0, Reset: reset, RetryAfter: 1}, 1, http.Header{
			"X-Ratelimit-Limit": {"1"}, "X-Ratelimit-Remaining": {"1"}, "X-Ratelimit-Reset": {"1795687267"},
			"Ratelimit-Policy": {`"tenant";q=1;w=60`}, "Ratelimit": {`"tenant";r=1;t=1`},
		}},
		{Decision{Limit: 2147483647, Remaining: 0, Reset: reset, RetryAfter: 60}, 0, http.Header{
			"X-Ratelimit-Limit": {"2147483647"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1795687267"},
			"Ratelimit-Policy": {`"tenant";q=2147483647;w=60`}, "Ratelimit": {`"tenant";r=0;t=60`},
		}},
	} {
		h := http.Header{"X-Request-Id": {"req_1"}}
		writeHeaders(h, tc.d, tc.refund)
		tc.want["X-Request-Id"] = []string{"req_1"}
		if diff := cmp.Diff(tc.want, h); diff != "" {
			t.Errorf("writeHeaders(%+v, %d) (-want +got):\n%s", tc.d, tc.refund, diff)
		}
		// Each value stands alone: adding to one leaves the next as it was.
		h.Add("X-Ratelimit-Limit", "x")
		if got := h.Get("X-Ratelimit-Remaining"); got != tc.want.Get("X-Ratelimit-Remaining") {
			t.Errorf("after an Add to X-Ratelimit-Limit, X-Ratelimit-Remaining = %q", got)
		}
	}
}
