package portal

import (
	"strings"
	"testing"
)

// FuzzCookieAndNext feeds arbitrary cookie values and post-sign-in
// destinations: a cookie parses to a tenant id and a stored digest or not
// at all, and a destination always stays inside the portal.
func FuzzCookieAndNext(f *testing.F) {
	for _, s := range []string{
		"ten_01M8K9AWTP13DVVCX6D0XKMZ9R.3y9LosBGysyIVwzNMobMzYY_BmOYvYsYhOomHB3I7uQ",
		"ten_A.", ".x", "ten_A.b.c", "/portal/subscriptions?cursor=x", "//evil", "/portal/\\x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if tenant, id, ok := parseCookie(s); ok {
			if !strings.HasPrefix(tenant, "ten_") || len(id) != 64 || strings.ContainsAny(tenant, ".*> ") {
				t.Errorf("parseCookie(%q) = %q, %q", s, tenant, id)
			}
		}
		next := safeNext(s)
		if !strings.HasPrefix(next, Prefix) || strings.Contains(next, "//") || strings.ContainsAny(next, "\\\r\n") {
			t.Errorf("safeNext(%q) = %q", s, next)
		}
		if _, ok := parseFormTime(s); ok && strings.TrimSpace(s) == "" {
			t.Errorf("parseFormTime(%q) accepted an empty time", s)
		}
	})
}

// FuzzHeaderLines feeds arbitrary text to the form's custom-header
// parser: every name is trimmed, non-empty and free of line breaks and
// colons, every value trimmed, and writing the headers back as lines
// parses to the same headers.
func FuzzHeaderLines(f *testing.F) {
	for _, s := range []string{"X-Team: ops", "X-A: 1\nX-B : two words \n\n", "no colon", ": empty name", "X-A: a:b:c", "X-A:\r\nX-B: 2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		headers, _ := parseHeaders(s)
		var lines []string
		for k, v := range headers {
			if k == "" || k != strings.TrimSpace(k) || v != strings.TrimSpace(v) || strings.ContainsAny(k, ":\n") || strings.Contains(v, "\n") {
				t.Errorf("parseHeaders(%q) gave %q: %q", s, k, v)
			}
			lines = append(lines, k+": "+v)
		}
		again, more := parseHeaders(strings.Join(lines, "\n"))
		if len(more) > 0 || len(again) != len(headers) {
			t.Fatalf("parseHeaders(%q) = %v, written back and parsed = %v, %v", s, headers, again, more)
		}
		for k, v := range headers {
			if again[k] != v {
				t.Errorf("parseHeaders(%q): %q = %q, then %q", s, k, v, again[k])
			}
		}
	})
}
