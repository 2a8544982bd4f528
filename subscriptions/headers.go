package subscriptions

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Limits on custom headers.
const (
	MaxHeaders        = 20
	MaxHeaderNameLen  = 64
	MaxHeaderValueLen = 1024
)

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

// Headers returns the custom headers sent with every delivery; the map is
// shared and must not be modified.
func (s *Subscription) Headers() map[string]string { return s.headers }

// HeaderNames returns the names of the custom headers, sorted: what the
// API shows of them (their values are write-only).
func (s *Subscription) HeaderNames() []string {
	return slices.Sorted(maps.Keys(s.headers))
}
