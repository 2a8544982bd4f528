package limits

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
)

// Patch is an operator's change of some of a tenant's limits: a number
// sets a limit, null returns it to the default, and a name left out stays
// as it is. Decoding refuses anything but a number or null for a name
// (and, with the API's decoder, an unknown name); Problems checks the
// numbers.
type Patch struct {
	RequestsPerMinute Setting `json:"requestsPerMinute,omitzero"`
	Subscriptions     Setting `json:"subscriptions,omitzero"`
	EventTypes        Setting `json:"eventTypes,omitzero"`
	EventBytes        Setting `json:"eventBytes,omitzero"`
	StoredBytes       Setting `json:"storedBytes,omitzero"`
	AttemptsInFlight  Setting `json:"attemptsInFlight,omitzero"`
	Jobs              Setting `json:"jobs,omitzero"`
}

// Setting is one limit of a Patch: absent (the zero value), null, or a
// JSON number, kept as written until Problems or Apply reads it.
type Setting struct {
	given  bool
	number string // "" for null
}

// Set returns a Setting of n.
func Set(n int64) Setting { return Setting{given: true, number: strconv.FormatInt(n, 10)} }

// Reset returns the Setting that returns a limit to its default (null).
func Reset() Setting { return Setting{given: true} }

// Given reports whether the patch names this limit.
func (s Setting) Given() bool { return s.given }

// IsZero reports whether the setting is absent, for omitzero.
func (s Setting) IsZero() bool { return !s.given }

// Value returns the number set: 0 for null (the default), and false when
// it is not a whole number that fits an int64.
func (s Setting) Value() (int64, bool) {
	if s.number == "" {
		return 0, true
	}
	if n, err := strconv.ParseInt(s.number, 10, 64); err == nil {
		return n, true
	}
	// 1e3 and 500.0 are whole numbers too.
	f, err := strconv.ParseFloat(s.number, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// UnmarshalJSON takes null or a number; anything else is the wrong type.
func (s *Setting) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*s = Setting{given: true}
		return nil
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*s = Setting{given: true, number: string(b)}
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[int64]()}
}

// MarshalJSON writes the setting as it was given.
func (s Setting) MarshalJSON() ([]byte, error) {
	if s.number == "" {
		return []byte("null"), nil
	}
	return []byte(s.number), nil
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case '[':
		return "array"
	case '{':
		return "object"
	}
	return "value"
}

// setting returns the patch's setting of one limit, or nil for an
// unknown name.
func (p *Patch) setting(name string) *Setting {
	switch name {
	case RequestsPerMinute:
		return &p.RequestsPerMinute
	case Subscriptions:
		return &p.Subscriptions
	case EventTypes:
		return &p.EventTypes
	case EventBytes:
		return &p.EventBytes
	case StoredBytes:
		return &p.StoredBytes
	case AttemptsInFlight:
		return &p.AttemptsInFlight
	case Jobs:
		return &p.Jobs
	}
	return nil
}

// Problems lists each number of p that is not a whole number within its
// limit's bounds, by name, in the order of Names.
func (p Patch) Problems() []Problem {
	var out []Problem
	for _, name := range Names {
		s := p.setting(name)
		if !s.given || s.number == "" {
			continue
		}
		v, ok := s.Value()
		if !ok {
			out = append(out, outOfBounds(name))
		} else if pr, bad := check(name, v); bad {
			out = append(out, pr)
		}
	}
	return out
}

// Apply returns l changed by p (which must have no Problems): each number
// given replaces its limit, each null returns it to the default (zero).
func (p Patch) Apply(l Limits) Limits {
	for _, name := range Names {
		if s := p.setting(name); s.given {
			v, _ := s.Value()
			*l.field(name) = v
		}
	}
	return l
}
