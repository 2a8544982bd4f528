package subscriptions

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/onestack/webhooks/filter"
)

// Limits on custom headers.
const (
	MaxHeaders        = 20
	MaxHeaderNameLen  = 64
	MaxHeaderValueLen = 1024
)

// newFilterCompiler builds the filter environment; it fails only on a
// programmer's mistake in it.
func newFilterCompiler() *filter.Compiler {
	c, err := filter.NewCompiler()
	if err != nil {
		panic(err)
	}
	return c
}

// CheckPatch validates a patch of cur: like Check, except that event types
// cur already lists may stay even if they were deprecated since.
func (r *Rules) CheckPatch(in *PatchInput, cur *Subscription) error {
	return r.check(in, cur.EventTypes)
}

// extras checks what struct tags cannot say: deprecated event types, the
// pace (0, or within its bounds), the filter (compiled, with the position
// of its error) and custom headers.
func (r *Rules) extras(in any, kept []string) []FieldError {
	var (
		types   []string
		pace    *float64
		expr    *string
		headers map[string]string
	)
	switch v := in.(type) {
	case *CreateInput:
		types, pace, expr, headers = v.EventTypes, v.RateLimit, v.Filter, v.Headers
	case *PatchInput:
		if v.EventTypes != nil {
			types = *v.EventTypes
		}
		pace, expr = v.RateLimit, v.Filter
		if v.Headers != nil {
			headers = *v.Headers
		}
	default:
		return nil
	}
	var out []FieldError
	if pace != nil && !validPace(*pace) {
		out = append(out, FieldError{Field: "rateLimit",
			Reason: fmt.Sprintf("must be 0 (no pace) or from %g (one delivery per %g s) to %g deliveries per second", MinDeliveryRate, 1/MinDeliveryRate, float64(MaxDeliveryRate))})
	}
	cat := r.catalog.Catalog()
	for i, t := range types {
		if cat.Deprecated(t) && !slices.Contains(kept, t) {
			out = append(out, FieldError{Field: fmt.Sprintf("eventTypes[%d]", i),
				Reason: fmt.Sprintf("%q is deprecated: it is still delivered to the subscriptions that have it, but new ones may not name it", t)})
		}
	}
	if expr != nil && *expr != "" {
		if _, err := r.filters.Compile(*expr); err != nil {
			out = append(out, FieldError{Field: "filter", Reason: err.Error()})
		}
	}
	return append(out, headerProblems(headers)...)
}

// validPace reports whether v is a subscription's pace it may have: 0
// (none), or from MinDeliveryRate to MaxDeliveryRate.
func validPace(v float64) bool {
	return v == 0 || (v >= MinDeliveryRate && v <= MaxDeliveryRate)
}

// headerProblems checks custom headers: at most MaxHeaders, each name an
// HTTP token of at most MaxHeaderNameLen characters that the delivery
// contract does not own, each name once (whatever its case), each value
// at most MaxHeaderValueLen bytes of visible ASCII, spaces and tabs.
func headerProblems(h map[string]string) []FieldError {
	var out []FieldError
	if len(h) > MaxHeaders {
		out = append(out, FieldError{Field: "headers", Reason: fmt.Sprintf("must have at most %d entries", MaxHeaders)})
	}
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		field := "headers[" + name + "]"
		lower := strings.ToLower(name)
		switch {
		case name == "" || len(name) > MaxHeaderNameLen || !isToken(name):
			out = append(out, FieldError{Field: field, Reason: fmt.Sprintf("must be an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~) of at most %d characters", MaxHeaderNameLen)})
			continue
		case reservedHeader(lower):
			out = append(out, FieldError{Field: field, Reason: "is set by the delivery itself (webhook-*, content-type, content-length, host, user-agent and hop-by-hop headers cannot be replaced)"})
			continue
		case seen[lower] != "":
			out = append(out, FieldError{Field: field, Reason: "repeats the header " + seen[lower] + " (names are case-insensitive)"})
			continue
		}
		seen[lower] = name
		if v := h[name]; len(v) > MaxHeaderValueLen || !isHeaderValue(v) {
			out = append(out, FieldError{Field: field, Reason: fmt.Sprintf("value must be at most %d bytes of visible ASCII, spaces and tabs", MaxHeaderValueLen)})
		}
	}
	return out
}

// reservedHeader reports whether a lower-case name belongs to the delivery
// contract or to the connection.
func reservedHeader(lower string) bool {
	if strings.HasPrefix(lower, "webhook-") {
		return true
	}
	switch lower {
	case "content-type", "content-length", "content-encoding", "host", "user-agent",
		"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
		"te", "trailer", "transfer-encoding", "upgrade", "expect":
		return true
	}
	return false
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// applyExtras sets a new subscription's filter and headers.
func (in CreateInput) applyExtras(sub *Subscription) {
	if in.Filter != nil {
		sub.Filter = *in.Filter
	}
	if len(in.Headers) > 0 {
		sub.headers = maps.Clone(in.Headers)
	}
	sub.auth = prepareAuth(in.Auth)
}

// applyExtras changes a subscription's filter ("" removes it) and headers
// ({} removes them all).
func (p PatchInput) applyExtras(sub *Subscription) {
	if p.Filter != nil {
		sub.Filter = *p.Filter
	}
	if p.Headers != nil {
		sub.headers = nil
		if len(*p.Headers) > 0 {
			sub.headers = maps.Clone(*p.Headers)
		}
	}
	if p.Auth.Set {
		sub.auth = prepareAuth(p.Auth.Value)
	}
}

// Headers returns the custom headers sent with every delivery; the map is
// shared and must not be modified.
func (s *Subscription) Headers() map[string]string { return s.headers }

// HeaderNames returns the names of the custom headers, sorted: what the
// API shows of them (their values are write-only).
func (s *Subscription) HeaderNames() []string {
	return slices.Sorted(maps.Keys(s.headers))
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
