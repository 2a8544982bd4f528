package subscriptions

import (
	"fmt"
	"maps"
	"slices"
)

// CheckPatch validates a patch of cur: like Check, except that event types
// cur already lists may stay even if they were deprecated since.
func (r *Rules) CheckPatch(in *PatchInput, cur *Subscription) error {
	return r.check(in, cur.EventTypes)
}

// settingProblems checks what struct tags cannot say: deprecated event types, the
// pace (0, or within its bounds), the filter (compiled, with the position
// of its error) and custom headers.
func (r *Rules) settingProblems(in any, kept []string) []FieldError {
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

// applySettings sets a new subscription's filter, headers and
// authentication.
func (in CreateInput) applySettings(sub *Subscription) {
	if in.Filter != nil {
		sub.Filter = *in.Filter
	}
	if len(in.Headers) > 0 {
		sub.headers = maps.Clone(in.Headers)
	}
	sub.auth = prepareAuth(in.Auth)
}

// applySettings changes a subscription's filter ("" removes it), headers
// ({} removes them all) and authentication, as the patch sets them.
func (p PatchInput) applySettings(sub *Subscription) {
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
