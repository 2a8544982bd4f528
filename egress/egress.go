// Package egress decides where webhooks may be sent: which URLs a
// subscription may name and which addresses the delivery client may dial.
// Checking the dialled address, after DNS resolution, is what defeats DNS
// rebinding; checking the URL gives tenants an early, clear error.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// MaxURLLen bounds a destination URL.
const MaxURLLen = 2048

// Errors of the policy; callers match them with errors.Is.
var (
	ErrScheme      = errors.New("url must be an absolute https URL")
	ErrCredentials = errors.New("url must not contain credentials")
	ErrTooLong     = errors.New("url is longer than 2048 characters")
	ErrInternal    = errors.New("destination is in a private, loopback, link-local or otherwise internal range")
	ErrMalformed   = errors.New("url is not valid")
)

// Policy says which destinations are allowed. The zero value is the safe
// default: https only, public addresses only.
type Policy struct {
	// AllowHTTP lets plain http URLs through.
	AllowHTTP bool
	// AllowPrivate lets every internal range through (testenv, on-premises).
	AllowPrivate bool
	// AllowCIDRs lets these ranges through even though they are internal.
	AllowCIDRs []netip.Prefix
}

// blocked lists the ranges that are never dialled unless allowed: RFC 6890
// special-purpose ranges, cloud metadata, and the IPv6 forms that wrap IPv4.
var blocked = mustPrefixes(
	"0.0.0.0/8",       // "this network", unspecified
	"10.0.0.0/8",      // RFC 1918
	"100.64.0.0/10",   // CGNAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
	"172.16.0.0/12",   // RFC 1918
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // TEST-NET-1
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // RFC 1918
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // TEST-NET-2
	"203.0.113.0/24",  // TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"100::/64",        // discard
	"2001::/23",       // IETF protocol assignments (Teredo etc.)
	"2001:db8::/32",   // documentation
	"fc00::/7",        // unique local (AWS metadata fd00:ec2::254 too)
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local, deprecated
	"ff00::/8",        // multicast
)

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// embeddedIPv4 returns the IPv4 address that an IPv6 address wraps, by
// IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96, 64:ff9b:1::/48),
// IPv4-compatible (::/96) or 6to4 (2002::/16) form.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), true
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b: // 64:ff9b::/96 and 64:ff9b:1::/48
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case b[0] == 0x20 && b[1] == 0x02: // 2002:AABB:CCDD::/48
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case isZero(b[:12]): // deprecated IPv4-compatible ::a.b.c.d
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	}
	return netip.Addr{}, false
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Internal reports whether a is in a range that is refused by default.
func Internal(a netip.Addr) bool {
	a = a.WithZone("")
	if v4, ok := embeddedIPv4(a); ok {
		if Internal(v4) {
			return true
		}
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// AllowAddr reports whether the policy lets a be dialled.
func (p Policy) AllowAddr(a netip.Addr) bool {
	if p.AllowPrivate || !Internal(a) {
		return true
	}
	u := a.Unmap()
	for _, c := range p.AllowCIDRs {
		if c.Contains(u) {
			return true
		}
	}
	return false
}

// CheckURL validates a destination URL: absolute, https (or http when
// allowed), no credentials, at most MaxURLLen, and not a literal internal
// address or localhost unless allowed.
func (p Policy) CheckURL(raw string) error {
	if len(raw) > MaxURLLen {
		return ErrTooLong
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return ErrMalformed
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return ErrScheme
		}
	default:
		return ErrScheme
	}
	if u.User != nil {
		return ErrCredentials
	}
	host := u.Hostname()
	if host == "" {
		return ErrMalformed
	}
	if port := u.Port(); port != "" {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return ErrMalformed
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !p.AllowAddr(a) {
			return ErrInternal
		}
		return nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if (lower == "localhost" || strings.HasSuffix(lower, ".localhost")) && !p.AllowPrivate {
		return ErrInternal
	}
	return nil
}

// Control is a net.Dialer Control function that refuses connections to
// addresses the policy does not allow. It runs after DNS resolution, for the
// address actually dialled.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrMalformed)
	}
	if !p.AllowAddr(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", address, ErrInternal)
	}
	return nil
}

// ParseCIDRs parses a comma-separated list of CIDR prefixes.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		pr, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("parse CIDR %q: %w", f, err)
		}
		ps = append(ps, pr.Masked())
	}
	return ps, nil
}
