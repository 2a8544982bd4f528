package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/onestack/webhooks/client"
)

// settings are the flags of subscriptions create and update for what a
// subscription does beyond its URL and types: filter, custom headers,
// FIFO, endpoint authentication and the traceparent header.
type settings struct {
	filter      optionalString
	headers     keyValues
	noHeaders   bool
	fifo        bool
	traceparent optionalBool

	oauth2TokenURL, oauth2ClientID, oauth2ClientSecret, oauth2Audience string
	oauth2Scopes                                                       list
	mtlsCert, mtlsKey, mtlsCA                                          string
	noAuth                                                             bool
}

func (s *settings) register(fs *flag.FlagSet, update bool) {
	filterHelp := `CEL filter over type, data and occurredAt, e.g. 'data.priority == "high"'`
	headerHelp := "custom header sent with every delivery, Name=value (repeatable; values are write-only)"
	if update {
		filterHelp += " ('' removes it)"
		headerHelp += "; replaces every header"
		fs.BoolVar(&s.noHeaders, "no-headers", false, "remove every custom header")
		fs.BoolVar(&s.noAuth, "no-auth", false, "remove the endpoint authentication")
	}
	fs.Var(&s.filter, "filter", filterHelp)
	fs.Var(&s.headers, "header", headerHelp)
	fs.BoolVar(&s.fifo, "fifo", false, "deliver one at a time, in order (--ordering fifo)")
	fs.Var(&s.traceparent, "traceparent", "true or false: send a W3C traceparent header with each delivery (default true)")
	fs.Var(boolSetter(func() { f := false; s.traceparent.p = &f }), "no-traceparent", "send no traceparent header (--traceparent=false)")
	fs.StringVar(&s.oauth2TokenURL, "oauth2-token-url", "", "OAuth2 client credentials: the token endpoint")
	fs.StringVar(&s.oauth2ClientID, "oauth2-client-id", "", "OAuth2 client id")
	fs.StringVar(&s.oauth2ClientSecret, "oauth2-client-secret", "", "OAuth2 client secret (write-only; default: $WEBHOOKS_OAUTH2_CLIENT_SECRET)")
	fs.Var(&s.oauth2Scopes, "oauth2-scope", "OAuth2 scope (repeatable)")
	fs.StringVar(&s.oauth2Audience, "oauth2-audience", "", "OAuth2 audience")
	fs.StringVar(&s.mtlsCert, "mtls-cert", "", "mutual TLS: a PEM file of the client certificate")
	fs.StringVar(&s.mtlsKey, "mtls-key", "", "mutual TLS: a PEM file of its private key (write-only)")
	fs.StringVar(&s.mtlsCA, "mtls-ca", "", "mutual TLS: a PEM file of CAs to trust for this endpoint (optional)")
}

// auth builds the endpoint authentication the flags ask for: nil when
// none was given.
func (s *settings) auth(getenv func(string) string) (*client.Auth, error) {
	oauth := s.oauth2TokenURL != "" || s.oauth2ClientID != "" || s.oauth2ClientSecret != "" || len(s.oauth2Scopes) > 0 || s.oauth2Audience != ""
	mtls := s.mtlsCert != "" || s.mtlsKey != "" || s.mtlsCA != ""
	switch {
	case s.noAuth && (oauth || mtls):
		return nil, usagef("--no-auth excludes the --oauth2-* and --mtls-* flags")
	case oauth && mtls:
		return nil, usagef("give either --oauth2-* or --mtls-* flags, not both")
	case oauth:
		secret := s.oauth2ClientSecret
		if secret == "" && getenv != nil {
			secret = getenv("WEBHOOKS_OAUTH2_CLIENT_SECRET")
		}
		if s.oauth2TokenURL == "" || s.oauth2ClientID == "" || secret == "" {
			return nil, usagef("OAuth2 needs --oauth2-token-url, --oauth2-client-id and --oauth2-client-secret")
		}
		return client.OAuth2(s.oauth2TokenURL, s.oauth2ClientID, secret, s.oauth2Scopes, s.oauth2Audience), nil
	case mtls:
		if s.mtlsCert == "" || s.mtlsKey == "" {
			return nil, usagef("mutual TLS needs --mtls-cert and --mtls-key")
		}
		var pems [3]string
		for i, name := range []string{s.mtlsCert, s.mtlsKey, s.mtlsCA} {
			if name == "" {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			pems[i] = string(b)
		}
		return client.MTLS(pems[0], pems[1], pems[2]), nil
	}
	return nil, nil
}

// create sets the flags' settings on a new subscription.
func (s *settings) create(in *client.NewSubscription, getenv func(string) string) error {
	auth, err := s.auth(getenv)
	if err != nil {
		return err
	}
	in.Auth = auth
	if s.filter.set {
		in.Filter = s.filter.v
	}
	in.Headers = s.headers.m
	if s.fifo {
		if in.Ordering != "" && in.Ordering != "fifo" {
			return usagef("--fifo contradicts --ordering %s", in.Ordering)
		}
		in.Ordering = "fifo"
	}
	in.SendTraceparent = s.traceparent.p
	return nil
}

// patch sets the flags' settings on a patch and reports whether any was
// given.
func (s *settings) patch(p *client.SubscriptionPatch, getenv func(string) string) (bool, error) {
	auth, err := s.auth(getenv)
	if err != nil {
		return false, err
	}
	set := false
	if auth != nil {
		p.Auth, set = auth, true
	}
	if s.noAuth {
		p.RemoveAuth, set = true, true
	}
	if s.filter.set {
		p.Filter, set = &s.filter.v, true
	}
	switch {
	case s.noHeaders && s.headers.m != nil:
		return false, usagef("--no-headers excludes --header")
	case s.noHeaders:
		p.Headers, set = &map[string]string{}, true
	case s.headers.m != nil:
		p.Headers, set = &s.headers.m, true
	}
	if s.fifo {
		if p.Ordering != nil && *p.Ordering != "fifo" {
			return false, usagef("--fifo contradicts --ordering %s", *p.Ordering)
		}
		fifo := "fifo"
		p.Ordering, set = &fifo, true
	}
	if s.traceparent.p != nil {
		p.SendTraceparent, set = s.traceparent.p, true
	}
	return set, nil
}

// showSettings writes what settings shows beyond showSubscription's
// basics: only those the server reported.
func showSettings(w *table, s client.Subscription) {
	if s.Filter != nil {
		w.kv("filter", *s.Filter)
	}
	if len(s.HeaderNames) > 0 {
		names := append([]string(nil), s.HeaderNames...)
		sort.Strings(names)
		w.kv("headers", strings.Join(names, ", ")+" (values write-only)")
	}
	if s.Auth != nil {
		w.kv("auth", describeAuth(*s.Auth))
	}
	if s.SendTraceparent != nil {
		w.kv("traceparent", map[bool]string{true: "sent", false: "off"}[*s.SendTraceparent])
	}
	if s.Backlog != nil {
		w.kv("backlog", fmt.Sprintf("%d pending", *s.Backlog))
	}
	if s.FailingSince != nil {
		w.kv("failing since", stamp(*s.FailingSince))
	}
}

func describeAuth(a client.AuthView) string {
	switch a.Type {
	case client.AuthOAuth2:
		out := "OAuth2 client " + a.ClientID + " at " + a.TokenURL
		if len(a.Scopes) > 0 {
			out += ", scopes " + strings.Join(a.Scopes, " ")
		}
		if a.Audience != "" {
			out += ", audience " + a.Audience
		}
		return out
	case client.AuthMTLS:
		out := "mutual TLS"
		if a.Subject != "" {
			out += ", certificate " + a.Subject
		}
		if a.CertificateExpiresAt != nil {
			out += ", expires " + stamp(*a.CertificateExpiresAt)
			if time.Until(*a.CertificateExpiresAt) < 0 {
				out += " (EXPIRED)"
			}
		}
		return out
	}
	return a.Type
}

// optionalString is a string flag that knows whether it was given.
type optionalString struct {
	v   string
	set bool
}

func (o *optionalString) String() string {
	if o == nil {
		return ""
	}
	return o.v
}

func (o *optionalString) Set(s string) error { o.v, o.set = s, true; return nil }

// list collects a repeated flag.
type list []string

func (l *list) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// boolSetter is a flag without a value that runs f when given.
type boolSetter func()

func (b boolSetter) String() string   { return "" }
func (b boolSetter) IsBoolFlag() bool { return true }
func (b boolSetter) Set(s string) error {
	if s != "true" {
		return fmt.Errorf("takes no value")
	}
	b()
	return nil
}
