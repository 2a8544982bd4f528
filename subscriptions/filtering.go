package subscriptions

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onestack/webhooks/filter"
)

// FilterStats counts what payload filters did since the store opened.
type FilterStats struct {
	// Evaluated is how many times a filter judged an event.
	Evaluated uint64
	// Excluded is how many of those left the event out, errors included.
	Excluded uint64
	// Failed is how many evaluations failed (a missing field compared, a
	// wrong type, the cost limit, a body that does not decode, a filter
	// that does not compile): each counts as no match.
	Failed uint64
}

// filterCounters are the store's FilterStats.
type filterCounters struct {
	evaluated, excluded, failed atomic.Uint64
}

// FilterStats returns the counts so far.
func (s *Store) FilterStats() FilterStats {
	return FilterStats{Evaluated: s.fstats.evaluated.Load(), Excluded: s.fstats.excluded.Load(), Failed: s.fstats.failed.Load()}
}

// FilterEvent is what payload filters see of an event, decoded once from
// its webhook body, and only when a subscription has a filter.
type FilterEvent struct {
	body  []byte
	input *filter.Input
	err   error
}

// NewFilterEvent wraps an event's webhook body (the envelope); nothing is
// decoded until a filter needs it.
func NewFilterEvent(body []byte) *FilterEvent { return &FilterEvent{body: body} }

// decode reads the envelope once. A JSON number written without a
// fraction or exponent that fits 64 bits is an int to filters, any other a
// double: data.n % 5 == 0 works, and comparisons between the two work too.
func (e *FilterEvent) decode() (*filter.Input, error) {
	if e.input == nil && e.err == nil {
		var env struct {
			Type       string         `json:"type"`
			OccurredAt time.Time      `json:"occurredAt"`
			Data       map[string]any `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(e.body))
		dec.UseNumber()
		if e.err = dec.Decode(&env); e.err == nil {
			numbers(env.Data)
			e.input = filter.NewInput(env.Type, env.OccurredAt, env.Data)
		}
	}
	return e.input, e.err
}

// numbers turns the json.Numbers of a decoded value into int64 or float64,
// in place, and returns the value.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if n, err := x.Int64(); err == nil {
				return n
			}
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// Filter keeps, in place, the subscriptions of subs that want the event
// whose webhook body is body: those without a filter, and those whose
// filter accepts it. The body is decoded at most once, and only if one of
// subs has a filter; the type-only path does no work and no allocation. An
// evaluation that fails counts as no match: it is counted and logged at
// debug level, never returned.
func (s *Store) Filter(subs []*Subscription, body []byte) []*Subscription {
	var ev *FilterEvent
	out := subs[:0]
	for _, sub := range subs {
		if sub.Filter == "" {
			out = append(out, sub)
			continue
		}
		if ev == nil {
			ev = NewFilterEvent(body)
		}
		if s.Accepts(sub, ev) {
			out = append(out, sub)
		}
	}
	clear(subs[len(out):])
	return out
}

// Accepts reports whether sub's filter, if any, accepts the event.
func (s *Store) Accepts(sub *Subscription, ev *FilterEvent) bool {
	if sub.Filter == "" {
		return true
	}
	s.fstats.evaluated.Add(1)
	ok, err := s.accepts(sub, ev)
	if err != nil {
		s.fstats.failed.Add(1)
		if s.logger != nil && s.logger.Enabled(context.Background(), slog.LevelDebug) {
			s.logger.Debug("filter: event not matched, its evaluation failed", "subscription", sub.ID, "err", err)
		}
	}
	if !ok {
		s.fstats.excluded.Add(1)
	}
	return ok
}

func (s *Store) accepts(sub *Subscription, ev *FilterEvent) (bool, error) {
	prg := sub.program
	if prg == nil || prg.Source() != sub.Filter {
		// A subscription read outside the index (storage) is compiled
		// here; one whose stored filter no longer compiles matches nothing.
		var err error
		if prg, err = s.idx.filters.Compile(sub.Filter); err != nil {
			return false, err
		}
	}
	in, err := ev.decode()
	if err != nil {
		return false, err
	}
	return prg.Match(in)
}

// newFilterCompiler builds the filter environment; it fails only on a
// programmer's mistake in it.
func newFilterCompiler() *filter.Compiler {
	c, err := filter.NewCompiler()
	if err != nil {
		panic(err)
	}
	return c
}

// HasFilter reports whether the subscription filters events by payload.
func (s *Subscription) HasFilter() bool { return s.Filter != "" }

// prepare compiles s's filter as it enters the index: once per change of
// the expression, since the same revision arriving again (a replica's own
// write, then its watch) keeps the program already compiled.
func (x *Index) prepare(s *Subscription) {
	if s.Filter == "" {
		s.program = nil
		return
	}
	if s.program != nil && s.program.Source() == s.Filter {
		return
	}
	x.mu.RLock()
	var old *Subscription
	if ts := x.subs[s.TenantID]; ts != nil {
		old = ts.byID[s.ID]
	}
	x.mu.RUnlock()
	if old != nil && old.program != nil && old.Filter == s.Filter {
		s.program = old.program
		return
	}
	// A stored filter that does not compile (only a change of this code
	// can cause it, since writes are checked) leaves program nil: the
	// subscription then matches no event, and Filter counts it.
	s.program, _ = x.filters.Compile(s.Filter)
}
