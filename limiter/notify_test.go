package limiter

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// notices records what HTTP tells its Notices.
type notices struct{ near, exceeded []int64 }

func (n *notices) LimitNear(_, limit string, _, used int64) {
	if limit == "requestsPerMinute" {
		n.near = append(n.near, used)
	}
}

func (n *notices) LimitExceeded(_, limit string, _, used int64) {
	if limit == "requestsPerMinute" {
		n.exceeded = append(n.exceeded, used)
	}
}

// TestNotify: each admitted request tells its window's use so far, each
// 429 tells the refusal; within one window of 5, the 6th and 7th are
// refused.
func TestNotify(t *testing.T) {
	var clk fakeClock
	clk.set(windowStart("ten_a", time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)).Add(Window))
	h := NewHTTP(New(NewLocal(), clk.now), nil, slog.New(slog.DiscardHandler))
	var n notices
	h.Notify(&n)
	for range 7 {
		w := httptest.NewRecorder()
		if _, done, err := h.Admit(w, httptest.NewRequest(http.MethodGet, "/api/limits", nil), "ten_a", 5); err == nil {
			done()
		}
	}
	if diff := cmp.Diff([]int64{1, 2, 3, 4, 5}, n.near); diff != "" {
		t.Errorf("use told (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{5, 5}, n.exceeded); diff != "" {
		t.Errorf("refusals told (-want +got):\n%s", diff)
	}
}
