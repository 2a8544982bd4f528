package limiter

import (
	"fmt"
	"testing"
	"time"
)

func TestFailures(t *testing.T) {
	type step struct {
		at          time.Duration
		op          string // "fail" or "check"
		addr        string
		wantBlocked bool
		wantRetry   int
	}
	tests := []struct {
		name  string
		cfg   FailuresConfig
		steps []step
	}{
		{"blocked at the limit until the window ends", FailuresConfig{Limit: 3}, []step{
			{0, "fail", "192.0.2.1:1000", false, 0},
			{time.Second, "fail", "192.0.2.1:1001", false, 0},
			{2 * time.Second, "check", "192.0.2.1:1", false, 0},
			{2 * time.Second, "fail", "192.0.2.1:1002", false, 0},
			{2 * time.Second, "check", "192.0.2.1:1", true, 58},
			{59*time.Second + 500*time.Millisecond, "check", "192.0.2.1:1", true, 1},
			{60 * time.Second, "check", "192.0.2.1:1", false, 0},
			{60 * time.Second, "fail", "192.0.2.1:1", false, 0},
			{60 * time.Second, "check", "192.0.2.1:1", false, 0},
		}},
		{"addresses are counted apart", FailuresConfig{Limit: 1}, []step{
			{0, "fail", "192.0.2.1:1", false, 0},
			{0, "check", "192.0.2.1:1", true, 60},
			{0, "check", "192.0.2.2:1", false, 0},
		}},
		{"an IPv6 /64 is one address", FailuresConfig{Limit: 2}, []step{
			{0, "fail", "[2001:db8::1]:1", false, 0},
			{0, "fail", "[2001:db8::ffff:2]:1", false, 0},
			{0, "check", "[2001:db8::3]:1", true, 60},
			{0, "check", "[2001:db8:0:1::1]:1", false, 0},
		}},
		{"IPv4 mapped in IPv6 is the IPv4 address", FailuresConfig{Limit: 1}, []step{
			{0, "fail", "[::ffff:192.0.2.9]:1", false, 0},
			{0, "check", "192.0.2.9:2", true, 60},
		}},
		{"past the table's bound new addresses share one count", FailuresConfig{Limit: 2, MaxAddresses: 2}, []step{
			{0, "fail", "192.0.2.1:1", false, 0},
			{0, "fail", "192.0.2.2:1", false, 0},
			{0, "fail", "192.0.2.3:1", false, 0},
			{0, "check", "192.0.2.4:1", false, 0},
			{0, "fail", "192.0.2.4:1", false, 0},
			{0, "check", "192.0.2.5:1", true, 60},
			{0, "check", "192.0.2.1:1", false, 0},
			{61 * time.Second, "fail", "192.0.2.6:1", false, 0}, // the sweep makes room
			{61 * time.Second, "check", "192.0.2.5:1", false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			now := start
			cfg := tt.cfg
			cfg.Now = func() time.Time { return now }
			f := NewFailures(cfg)
			for i, s := range tt.steps {
				now = start.Add(s.at)
				switch s.op {
				case "fail":
					f.Fail(s.addr)
				case "check":
					retry, limit, blocked := f.Blocked(s.addr)
					if blocked != s.wantBlocked || retry != s.wantRetry || limit != f.cfg.Limit {
						t.Errorf("step %d: Blocked(%q) at %v = %d, %d, %v, want %d, %d, %v", i, s.addr, s.at, retry, limit, blocked, s.wantRetry, f.cfg.Limit, s.wantBlocked)
					}
				}
			}
		})
	}
}

func TestFailuresStayBounded(t *testing.T) {
	f := NewFailures(FailuresConfig{MaxAddresses: 100})
	for i := range 10000 {
		f.Fail(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255))
	}
	if n := f.Len(); n > 101 {
		t.Fatalf("%d addresses counted, want at most 101", n)
	}
}
