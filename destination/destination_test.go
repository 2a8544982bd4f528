package destination

import (
	"net/url"
	"testing"
	"time"
)

// step is one thing that happens to a destination in a table test: an
// attempt asked to start, or one ending with an outcome, at a time.
type step struct {
	at    time.Duration // since the test's start
	start bool          // ask to start one attempt
	want  Verdict       // with start: what Start says
	done  Outcome       // without start: the outcome of the oldest attempt in flight
	state *State        // after the step, if set
}

func TestTracker(t *testing.T) {
	s := func(st State) *State { return &st }
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "a new destination takes its initial limit, then waits",
			cfg:  Config{Initial: 2},
			steps: []step{
				{start: true, want: Go},
				{start: true, want: Go},
				{start: true, want: Wait, state: s(State{InFlight: 2, Limit: 2})},
				{at: time.Millisecond, done: Answered, state: s(State{InFlight: 1, Limit: 3})},
				{at: time.Millisecond, start: true, want: Go},
				{at: time.Millisecond, start: true, want: Go},
				{at: time.Millisecond, start: true, want: Wait},
			},
		},
		{
			name: "answers grow the limit up to Max",
			cfg:  Config{Initial: 1, Max: 2},
			steps: []step{
				{start: true, want: Go},
				{done: Answered},
				{start: true, want: Go},
				{done: Answered},
				{start: true, want: Go},
				{done: Answered, state: s(State{Limit: 2})},
			},
		},
		{
			name: "an endpoint that never answers is cut to one probe",
			cfg:  Config{Initial: 8, OpenAfter: 3, ProbeEvery: 5 * time.Second},
			steps: []step{
				{start: true, want: Go}, {start: true, want: Go}, {start: true, want: Go}, {start: true, want: Go},
				// The four started together time out together: one cut.
				{at: 15 * time.Second, done: Failed, state: s(State{InFlight: 3, Limit: 4, Failures: 1})},
				{at: 15 * time.Second, done: Failed},
				{at: 15 * time.Second, done: Failed, state: s(State{InFlight: 1, Limit: 4, Failures: 3, Open: true})},
				// Open: a probe is out already (the last of the four).
				{at: 15 * time.Second, start: true, want: Shed},
				// It started before the cut: no second one.
				{at: 16 * time.Second, done: Failed, state: s(State{Limit: 4, Failures: 4, Open: true})},
				// No probe before ProbeEvery since the last.
				{at: 17 * time.Second, start: true, want: Shed},
				{at: 20 * time.Second, start: true, want: Go},
				{at: 20 * time.Second, start: true, want: Shed},
				{at: 35 * time.Second, done: Failed, state: s(State{Limit: 2, Failures: 5, Open: true})},
			},
		},
		{
			name: "an answer closes the breaker",
			cfg:  Config{Initial: 4, OpenAfter: 1, ProbeEvery: time.Second},
			steps: []step{
				{start: true, want: Go},
				{done: Failed, state: s(State{Limit: 2, Failures: 1, Open: true})},
				{start: true, want: Shed},
				{at: time.Second, start: true, want: Go},
				{at: 2 * time.Second, done: Answered, state: s(State{Limit: 2})}, // 2.5
				{at: 2 * time.Second, start: true, want: Go},
				{at: 2 * time.Second, start: true, want: Go},
				{at: 2 * time.Second, start: true, want: Wait},
			},
		},
		{
			name: "429 and 503 shrink the limit but never open the breaker",
			cfg:  Config{Initial: 8, OpenAfter: 1},
			steps: []step{
				{start: true, want: Go},
				{at: time.Second, done: Overloaded, state: s(State{Limit: 4})},
				{at: 2 * time.Second, start: true, want: Go},
				{at: 3 * time.Second, done: Overloaded, state: s(State{Limit: 2})},
				{at: 3 * time.Second, start: true, want: Go},
				{at: 3 * time.Second, start: true, want: Go},
				{at: 3 * time.Second, start: true, want: Wait},
			},
		},
		{
			name: "past the first cut the limit grows by one per round trip",
			cfg:  Config{Initial: 4},
			steps: []step{
				{start: true, want: Go},
				{at: time.Second, done: Overloaded, state: s(State{Limit: 2})},
				{at: 2 * time.Second, start: true, want: Go},
				{at: 2 * time.Second, done: Answered, state: s(State{Limit: 2})}, // 2.5
				{at: 2 * time.Second, start: true, want: Go},
				{at: 2 * time.Second, done: Answered, state: s(State{Limit: 2})}, // 2.9
				{at: 2 * time.Second, start: true, want: Go},
				{at: 2 * time.Second, done: Answered, state: s(State{Limit: 3})},
			},
		},
		{
			name: "a 503 to a probe closes the breaker too",
			cfg:  Config{Initial: 4, OpenAfter: 1, ProbeEvery: time.Second},
			steps: []step{
				{start: true, want: Go},
				{done: Failed, state: s(State{Limit: 2, Failures: 1, Open: true})},
				{at: time.Second, start: true, want: Go},
				{at: 2 * time.Second, done: Overloaded, state: s(State{Limit: 1})},
				{at: 2 * time.Second, start: true, want: Go},
			},
		},
		{
			name: "an unknown outcome changes nothing but what is in flight",
			cfg:  Config{Initial: 2, OpenAfter: 1},
			steps: []step{
				{start: true, want: Go},
				{done: Unknown, state: s(State{Limit: 2})},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			now := start
			tt.cfg.Now = func() time.Time { return now }
			tr := New(tt.cfg)
			var started []time.Time
			for i, st := range tt.steps {
				now = start.Add(st.at)
				if st.start {
					if got := tr.Start("k"); got != st.want {
						t.Fatalf("step %d: Start = %v, want %v", i, got, st.want)
					}
					if st.want == Go {
						started = append(started, now)
					}
				} else {
					if len(started) == 0 {
						t.Fatalf("step %d: nothing in flight to end", i)
					}
					tr.Done("k", started[0], st.done)
					started = started[1:]
				}
				if st.state != nil {
					if got := tr.State("k"); got != *st.state {
						t.Fatalf("step %d: State = %+v, want %+v", i, got, *st.state)
					}
				}
			}
		})
	}
}

func TestTrackerForgetsIdleDestinations(t *testing.T) {
	now := time.Unix(0, 0)
	tr := New(Config{Initial: 1, IdleAfter: time.Minute, Now: func() time.Time { return now }})
	tr.Start("a")
	tr.Done("a", now, Failed)
	now = now.Add(2 * time.Minute)
	for range 1024 {
		tr.Start("b")
		tr.Done("b", now, Answered)
	}
	tr.mu.Lock()
	_, kept := tr.dests["a"]
	tr.mu.Unlock()
	if kept {
		t.Errorf("an idle destination was still remembered after IdleAfter")
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://example.com/hook", "https://example.com:443"},
		{"https://example.com:8443/a?b", "https://example.com:8443"},
		{"http://127.0.0.1/x", "http://127.0.0.1:80"},
		{"http://[::1]:9000/x", "http://[::1]:9000"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Key(u); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
