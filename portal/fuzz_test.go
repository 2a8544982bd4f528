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
