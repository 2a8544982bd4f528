package limiter

import (
	"net/http"
	"testing"
)

func TestFree(t *testing.T) {
	tests := []struct {
		status      int
		ifNoneMatch string
		want        bool
	}{
		{http.StatusNotModified, `"7"`, true},
		{http.StatusNotModified, `W/"c1f", "7"`, true},
		{http.StatusNotModified, `*`, false},
		{http.StatusNotModified, ` * `, false},
		{http.StatusNotModified, `"7", *`, false},
		{http.StatusNotModified, `"*"`, true}, // a quoted tag, not the wildcard
		{http.StatusOK, `"7"`, false},
		{http.StatusOK, ``, false},
		{http.StatusTooManyRequests, ``, false},
	}
	for _, tt := range tests {
		if got := free(tt.status, wildcard(tt.ifNoneMatch)); got != tt.want {
			t.Errorf("free(%d, If-None-Match %q) = %v, want %v", tt.status, tt.ifNoneMatch, got, tt.want)
		}
	}
}
