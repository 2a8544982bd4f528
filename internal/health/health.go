// Package health collects what a long-lived part of the process reports
// about itself (a watch that is down, an index being rebuilt, a goroutine
// that panicked), for /readyz and the metrics. The zero value is not
// usable: make one with New and pass it to whatever reports.
package health

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
)

// Health is the set of problems the process knows of now, by name, and a
// count of the panics it recovered from. It is safe for concurrent use. A
// nil *Health accepts every call and records nothing, so a part built
// without one (a unit test) needs no check.
type Health struct {
	mu       sync.Mutex
	problems map[string]string
	panics   atomic.Int64
}

// New returns an empty Health: the process is ready.
func New() *Health { return &Health{problems: make(map[string]string)} }

// Set records a problem under name (for example "watch KV_subscriptions"),
// replacing the one it had.
func (h *Health) Set(name, problem string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problems[name] = problem
}

// Clear removes name's problem, if any.
func (h *Health) Clear(name string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.problems, name)
}

// Problems lists every problem as "name: problem", sorted; empty means
// ready.
func (h *Health) Problems() []string {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.problems))
	for name, p := range h.problems {
		out = append(out, name+": "+p)
	}
	slices.Sort(out)
	return out
}

// Panics is how many panics Recover caught since the process started.
func (h *Health) Panics() int64 {
	if h == nil {
		return 0
	}
	return h.panics.Load()
}

// Recover, deferred at the top of a long-lived goroutine, stops a panic
// there from ending the process: it logs the panic with its stack, counts
// it and records a problem under name, which stays until cleared (the
// goroutine it ended is not running any more). It must be called directly
// by defer.
func (h *Health) Recover(name string, logger *slog.Logger) {
	v := recover()
	if v == nil {
		return
	}
	if logger != nil {
		logger.Error("recovered from a panic", "in", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
	if h == nil {
		return
	}
	h.panics.Add(1)
	h.Set(name, fmt.Sprintf("stopped by a panic: %v", v))
}
