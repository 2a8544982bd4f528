package egress

import (
	"errors"
	"net/netip"
	"testing"
)

func TestInternal(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"2606:4700::1111", false},
		{"127.0.0.1", true},
		{"127.9.9.9", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"100.64.0.1", true},
		{"169.254.169.254", true},
		{"0.0.0.0", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"192.0.2.1", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"::1", true},
		{"::", true},
		{"fd00:ec2::254", true},
		{"fc00::1", true},
		{"fe80::1", true},
		{"ff02::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::808:808", false},
		{"2002:7f00:1::", true},
		{"2002:0808:0808::", false},
		{"::127.0.0.1", true},
		{"2001:db8::1", true},
	}
	for _, tt := range tests {
		if got := Internal(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Internal(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	strict := Policy{}
	open := Policy{AllowHTTP: true, AllowPrivate: true}
	cidr := Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	long := "https://example.com/" + string(make([]byte, 2100))
	tests := []struct {
		p    Policy
		url  string
		want error
	}{
		{strict, "https://hooks.example.com/x?y=1", nil},
		{strict, "https://8.8.8.8/hook", nil},
		{strict, "http://hooks.example.com/", ErrScheme},
		{open, "http://hooks.example.com/", nil},
		{strict, "ftp://hooks.example.com/", ErrScheme},
		{strict, "/relative", ErrMalformed},
		{strict, "https://", ErrMalformed},
		{strict, "https://user:pw@example.com/", ErrCredentials},
		{strict, "https://localhost/", ErrInternal},
		{strict, "https://api.localhost./", ErrInternal},
		{strict, "https://127.0.0.1:8443/", ErrInternal},
		{strict, "https://[::1]/", ErrInternal},
		{strict, "https://[::ffff:10.0.0.1]/", ErrInternal},
		{strict, "https://169.254.169.254/latest/meta-data", ErrInternal},
		{open, "http://127.0.0.1:9000/hook", nil},
		{cidr, "https://10.9.1.1/", nil},
		{cidr, "https://10.8.1.1/", ErrInternal},
		{strict, "https://example.com:99999/", ErrMalformed},
		{strict, long, ErrTooLong},
	}
	for _, tt := range tests {
		got := tt.p.CheckURL(tt.url)
		if !errors.Is(got, tt.want) {
			t.Errorf("CheckURL(%.60q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}

func TestControl(t *testing.T) {
	if err := (Policy{}).Control("tcp4", "127.0.0.1:80", nil); !errors.Is(err, ErrInternal) {
		t.Errorf("Control(127.0.0.1:80) = %v, want %v", err, ErrInternal)
	}
	if err := (Policy{}).Control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("Control(public) = %v, want nil", err)
	}
	if err := (Policy{AllowPrivate: true}).Control("tcp6", "[::1]:80", nil); err != nil {
		t.Errorf("Control([::1]:80) with private allowed = %v, want nil", err)
	}
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/", "http://[::1]:80/", "https://a@b/", "https://10.0.0.1/", "://", "https://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := (Policy{}).CheckURL(s)
		if err == nil {
			if err2 := (Policy{AllowHTTP: true, AllowPrivate: true}).CheckURL(s); err2 != nil {
				t.Fatalf("CheckURL(%q): strict accepts but open refuses: %v", s, err2)
			}
		}
	})
}
