package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

// TestTimeRange: --since and --until as events list (optional) and replay
// and recover (since required) read them.
func TestTimeRange(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		required  bool
		args      []string
		wantFrom  time.Time // zero: open
		wantAgo   time.Duration
		wantTo    time.Time
		wantUsage bool
	}{
		{name: "both open", args: nil},
		{name: "since required and missing", required: true, args: nil, wantUsage: true},
		{name: "RFC 3339 times", required: true, args: []string{"--since", "2026-12-01T10:00:00Z", "--until", "2026-12-01T11:00:00Z"}, wantFrom: at, wantTo: at.Add(time.Hour)},
		{name: "a duration ago", args: []string{"--since", "2h"}, wantAgo: 2 * time.Hour},
		{name: "a bad since", args: []string{"--since", "yesterday"}, wantUsage: true},
		{name: "a negative duration", args: []string{"--since", "-2h"}, wantUsage: true},
		{name: "a bad until", required: true, args: []string{"--since", "1h", "--until", "soon"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r timeRange
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			r.register(fs, tt.required)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			from, to, err := r.parse()
			after := time.Now()
			var ue *usageError
			if got := errors.As(err, &ue); got != tt.wantUsage {
				t.Fatalf("parse(%q) = %v, want a usage error: %v", tt.args, err, tt.wantUsage)
			}
			if tt.wantUsage {
				return
			}
			if tt.wantAgo != 0 {
				if from.Before(before.Add(-tt.wantAgo)) || from.After(after.Add(-tt.wantAgo)) {
					t.Errorf("parse(%q) from = %v, want %v before now", tt.args, from, tt.wantAgo)
				}
			} else if !from.Equal(tt.wantFrom) {
				t.Errorf("parse(%q) from = %v, want %v", tt.args, from, tt.wantFrom)
			}
			if !to.Equal(tt.wantTo) {
				t.Errorf("parse(%q) to = %v, want %v", tt.args, to, tt.wantTo)
			}
		})
	}
}

// TestTimeRangeHelp: the flags' help says what is required and what an
// empty --until means only where it is so.
func TestTimeRangeHelp(t *testing.T) {
	for _, tt := range []struct {
		required         bool
		wantSince, until string
	}{
		{false, "RFC 3339 time, or a duration ago such as 2h", "RFC 3339 time, or a duration ago"},
		{true, "RFC 3339 time, or a duration ago such as 2h (required)", "RFC 3339 time, or a duration ago (default: now)"},
	} {
		var r timeRange
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		r.register(fs, tt.required)
		if got := fs.Lookup("since").Usage; got != tt.wantSince {
			t.Errorf("register(required %v): --since help %q, want %q", tt.required, got, tt.wantSince)
		}
		if got := fs.Lookup("until").Usage; got != tt.until {
			t.Errorf("register(required %v): --until help %q, want %q", tt.required, got, tt.until)
		}
	}
}
