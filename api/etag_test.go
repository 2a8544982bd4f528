package api

import (
	"testing"
	"time"
)

func TestSubscriptionETag(t *testing.T) {
	n := func(v int) *int { return &v }
	tests := []struct {
		rev     uint64
		backlog *int
		want    string
	}{
		{7, nil, `"7"`},
		{7, n(0), `"7"`},
		{7, n(40), `"7.b40"`},
	}
	for _, tt := range tests {
		if got := subscriptionETag(tt.rev, tt.backlog); got != tt.want {
			t.Errorf("subscriptionETag(%d, %v) = %s, want %s", tt.rev, tt.backlog, got, tt.want)
		}
	}
}

func TestRevisionMatches(t *testing.T) {
	tests := []struct {
		header string
		rev    uint64
		want   bool
	}{
		{`"7"`, 7, true},
		{`"7.b40"`, 7, true}, // the backlog moving fails no precondition
		{`"8.b40"`, 7, false},
		{`"70"`, 7, false},
		{`W/"7"`, 7, false}, // If-Match compares strongly
		{`"1", "7.b3"`, 7, true},
		{`*`, 7, true},
		{`7`, 7, false},
		{`"7`, 7, false},                 // unterminated
		{`"7.b40`, 7, false},             // unterminated
		{`"7.bx"`, 7, false},             // not a backlog
		{`"7.f1764752400"`, 7, true},     // a failing endpoint fails no precondition
		{`"7.b40.f1764752400"`, 7, true}, // nor with a backlog
		{`"8.b40.f1764752400"`, 7, false},
		{`"7.fx"`, 7, false},
		{``, 7, false},
	}
	for _, tt := range tests {
		if got := revisionMatches(tt.header, tt.rev); got != tt.want {
			t.Errorf("revisionMatches(%q, %d) = %v, want %v", tt.header, tt.rev, got, tt.want)
		}
	}
}

func TestViewETag(t *testing.T) {
	since := time.Unix(1764752400, 0)
	forty := 40
	tests := []struct {
		v    subscriptionView
		want string
	}{
		{subscriptionView{}, `"7"`},
		{subscriptionView{Backlog: &forty}, `"7.b40"`},
		{subscriptionView{FailingSince: &since}, `"7.f1764752400"`},
		{subscriptionView{Backlog: &forty, FailingSince: &since}, `"7.b40.f1764752400"`},
	}
	for _, tt := range tests {
		if got := viewETag(7, &tt.v); got != tt.want {
			t.Errorf("viewETag(7, %+v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
