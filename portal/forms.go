package portal

import (
	"cmp"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/onestack/webhooks/client"
)

// subscriptionForm is the create and edit form of a subscription: what
// the browser sent, and the problems to show beside each field.
type subscriptionForm struct {
	URL         string
	EventTypes  []string // checked catalog types
	Patterns    string   // other patterns, comma separated (ticket.*, *)
	Description string
	Metadata    string // key=value lines
	Ordering    string
	RateLimit   string
	Active      bool
	// Filter is the CEL filter ("" none).
	Filter string
	// Headers are "Name: value" lines to set (write-only: the edit form
	// starts empty and shows HeaderNames, the names set now);
	// RemoveHeaders removes them all.
	Headers       string
	HeaderNames   []string
	RemoveHeaders bool
	// Scheme is the signature scheme asked for; CurrentScheme the one the
	// subscription has (edit form), so that only a change is sent.
	Scheme, CurrentScheme string
	// Traceparent is whether deliveries carry traceparent;
	// CurrentTraceparent what the subscription does now (edit form).
	Traceparent, CurrentTraceparent bool
	// Auth is "none", "oauth2", "mtls", or on the edit form "keep" (leave
	// the current one, CurrentAuth, as it is). The secrets
	// (OAuth2ClientSecret, MTLSKey) are write-only: never written back
	// into a page.
	Auth                             string
	CurrentAuth                      *client.AuthView
	OAuth2TokenURL, OAuth2ClientID   string
	OAuth2ClientSecret, OAuth2Scopes string
	OAuth2Audience                   string
	MTLSCert, MTLSKey, MTLSCA        string
	// ETag is the version the edit form was rendered from (If-Match).
	ETag string
	// Idem is the create form's one-time Idempotency-Key.
	Idem string
	// Errors are by form field; Problem is about the form as a whole.
	Errors  map[string]string
	Problem string
}

func readSubscriptionForm(r *http.Request) subscriptionForm {
	r.ParseForm()
	f := r.PostForm
	form := subscriptionForm{
		URL:         strings.TrimSpace(f.Get("url")),
		EventTypes:  f["eventTypes"],
		Patterns:    strings.TrimSpace(f.Get("patterns")),
		Description: f.Get("description"),
		Metadata:    f.Get("metadata"),
		Ordering:    f.Get("ordering"),
		RateLimit:   strings.TrimSpace(f.Get("rateLimit")),
		Active:      f.Get("active") == "true",
		ETag:        f.Get("etag"),
		Idem:        f.Get("idem"),

		Filter:             strings.TrimSpace(f.Get("filter")),
		Headers:            f.Get("headers"),
		RemoveHeaders:      f.Get("removeHeaders") == "true",
		Scheme:             f.Get("signatureScheme"),
		CurrentScheme:      f.Get("currentScheme"),
		Traceparent:        f.Get("sendTraceparent") == "true",
		CurrentTraceparent: f.Get("currentTraceparent") != "false",
		Auth:               f.Get("auth"),
		OAuth2TokenURL:     strings.TrimSpace(f.Get("oauth2TokenUrl")),
		OAuth2ClientID:     strings.TrimSpace(f.Get("oauth2ClientId")),
		OAuth2ClientSecret: f.Get("oauth2ClientSecret"),
		OAuth2Scopes:       f.Get("oauth2Scopes"),
		OAuth2Audience:     strings.TrimSpace(f.Get("oauth2Audience")),
		MTLSCert:           f.Get("mtlsCertificate"),
		MTLSKey:            f.Get("mtlsPrivateKey"),
		MTLSCA:             f.Get("mtlsCaBundle"),
	}
	if t := f.Get("currentAuth"); t != "" {
		// The edit form says what is set now, so that "none" removes it.
		form.CurrentAuth = &client.AuthView{Type: t}
	}
	if !f.Has("currentTraceparent") {
		// A form without the control changes nothing about it.
		form.Traceparent = form.CurrentTraceparent
	}
	return form
}

// newForm is the create form's start: active, no ordering, v1,
// traceparent on, no authentication.
func newForm() subscriptionForm {
	return subscriptionForm{Active: true, Ordering: "none", Idem: newToken(), Scheme: "v1", CurrentScheme: "v1",
		Traceparent: true, CurrentTraceparent: true, Auth: "none"}
}

// forgetSecrets clears what is write-only before a form is shown again.
func (f *subscriptionForm) forgetSecrets() {
	f.OAuth2ClientSecret, f.MTLSKey = "", ""
}

// formOf fills the edit form from a subscription.
func formOf(s client.Subscription, etag string) subscriptionForm {
	// Deliveries carry traceparent unless the API says they do not.
	traceparent := s.SendTraceparent == nil || *s.SendTraceparent
	f := subscriptionForm{URL: s.URL, Description: s.Description, Ordering: s.Ordering, Active: s.Active, ETag: etag,
		HeaderNames: s.HeaderNames, Scheme: cmp.Or(s.SignatureScheme, "v1"), CurrentScheme: cmp.Or(s.SignatureScheme, "v1"),
		Traceparent: traceparent, CurrentTraceparent: traceparent, Auth: "none", CurrentAuth: s.Auth}
	if s.Filter != nil {
		f.Filter = *s.Filter
	}
	if s.Auth != nil {
		f.Auth = "keep"
		f.OAuth2TokenURL, f.OAuth2ClientID, f.OAuth2Audience = s.Auth.TokenURL, s.Auth.ClientID, s.Auth.Audience
		f.OAuth2Scopes = strings.Join(s.Auth.Scopes, " ")
	}
	var patterns []string
	for _, t := range s.EventTypes {
		if strings.HasSuffix(t, "*") {
			patterns = append(patterns, t)
		} else {
			f.EventTypes = append(f.EventTypes, t)
		}
	}
	f.Patterns = strings.Join(patterns, ", ")
	keys := make([]string, 0, len(s.Metadata))
	for k := range s.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.Metadata += k + "=" + s.Metadata[k] + "\n"
	}
	if s.RateLimit != nil {
		f.RateLimit = strconv.FormatFloat(*s.RateLimit, 'f', -1, 64)
	}
	return f
}

// Selected reports whether a catalog type is checked.
func (f subscriptionForm) Selected(t string) bool { return slices.Contains(f.EventTypes, t) }

// fieldError is a problem with one field, the form's own or the API's.
type fieldError = client.FieldError

// newSubscription is the form as the API's create body. Only what JSON
// cannot carry is checked here (a metadata line without "=", a rate that
// is not a number); every rule about the values is the API's, whose
// field errors come back beside the fields.
func (f subscriptionForm) newSubscription() (client.NewSubscription, []fieldError) {
	p, problems := f.settings(true)
	s := client.NewSubscription{URL: *p.URL, EventTypes: *p.EventTypes, Description: *p.Description, Metadata: *p.Metadata,
		Active: &f.Active, RateLimit: p.RateLimit, Auth: p.Auth, SendTraceparent: p.SendTraceparent}
	if p.Ordering != nil {
		s.Ordering = *p.Ordering
	}
	if p.Filter != nil {
		s.Filter = *p.Filter
	}
	if p.Headers != nil {
		s.Headers = *p.Headers
	}
	if p.SignatureScheme != nil {
		s.SignatureScheme = *p.SignatureScheme
	}
	return s, problems
}

// patch is the form as the API's update body: what the create form sends,
// and an emptied rate limit, filter or header list removes it.
func (f subscriptionForm) patch() (client.SubscriptionPatch, []fieldError) {
	return f.settings(false)
}

// settings reads the form into the fields both bodies share; create
// leaves out the removals only an update has.
func (f subscriptionForm) settings(create bool) (client.SubscriptionPatch, []fieldError) {
	var problems []fieldError
	types := append([]string{}, f.EventTypes...)
	for _, p := range strings.FieldsFunc(f.Patterns, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		if !slices.Contains(types, p) {
			types = append(types, p)
		}
	}
	meta := map[string]string{}
	for i, line := range strings.Split(f.Metadata, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			problems = append(problems, fieldError{Field: "metadata", Reason: "line " + strconv.Itoa(i+1) + ": want key=value"})
			continue
		}
		meta[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	body := client.SubscriptionPatch{URL: &f.URL, EventTypes: &types, Description: &f.Description, Metadata: &meta}
	if f.Ordering != "" {
		body.Ordering = &f.Ordering
	}
	switch {
	case f.RateLimit != "":
		rate, err := strconv.ParseFloat(f.RateLimit, 64)
		if err != nil {
			problems = append(problems, fieldError{Field: "rateLimit", Reason: "want a number of deliveries per second, or nothing"})
		}
		body.RateLimit = &rate
	case !create:
		body.RateLimit = new(float64) // an emptied field removes the pace
	}
	if f.Filter != "" || !create {
		body.Filter = &f.Filter // on update, an emptied field removes the filter
	}
	headers, hp := parseHeaders(f.Headers)
	problems = append(problems, hp...)
	switch {
	case f.RemoveHeaders && len(headers) > 0:
		problems = append(problems, fieldError{Field: "headers", Reason: "either remove every header or give new ones, not both"})
	case f.RemoveHeaders && !create:
		body.Headers = &map[string]string{}
	case len(headers) > 0:
		body.Headers = &headers
	}
	// Sent only when it changes what the subscription does, so that a
	// default is never sent.
	if f.Scheme != "" && f.Scheme != f.CurrentScheme {
		body.SignatureScheme = &f.Scheme
	}
	if f.Traceparent != f.CurrentTraceparent {
		body.SendTraceparent = &f.Traceparent
	}
	auth, ap := f.auth()
	problems = append(problems, ap...)
	switch {
	case auth != nil:
		body.Auth = auth
	case f.Auth == "none" && f.CurrentAuth != nil:
		body.RemoveAuth = true
	}
	return body, problems
}

// parseHeaders reads "Name: value" lines.
func parseHeaders(text string) (map[string]string, []fieldError) {
	var problems []fieldError
	out := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" {
			problems = append(problems, fieldError{Field: "headers", Reason: "line " + strconv.Itoa(i+1) + ": want Name: value"})
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, problems
}

// auth is the authentication the form asks for: nil to leave it (keep)
// or for none.
func (f subscriptionForm) auth() (*client.Auth, []fieldError) {
	need := func(field, v string) []fieldError {
		if strings.TrimSpace(v) == "" {
			return []fieldError{{Field: "auth." + field, Reason: "required"}}
		}
		return nil
	}
	switch f.Auth {
	case "oauth2":
		problems := append(append(need("tokenUrl", f.OAuth2TokenURL), need("clientId", f.OAuth2ClientID)...), need("clientSecret", f.OAuth2ClientSecret)...)
		scopes := strings.Fields(strings.ReplaceAll(f.OAuth2Scopes, ",", " "))
		return client.OAuth2(f.OAuth2TokenURL, f.OAuth2ClientID, f.OAuth2ClientSecret, scopes, f.OAuth2Audience), problems
	case "mtls":
		problems := append(need("certificate", f.MTLSCert), need("privateKey", f.MTLSKey)...)
		ca := f.MTLSCA
		if strings.TrimSpace(ca) == "" {
			ca = ""
		}
		return client.MTLS(f.MTLSCert, f.MTLSKey, ca), problems
	case "", "none", "keep":
		return nil, nil
	}
	return nil, []fieldError{{Field: "auth", Reason: "want none, OAuth2 or mutual TLS"}}
}

// formField names the form field an API field error is about:
// "eventTypes[1]" → "eventTypes", "metadata[key]" → "metadata".
func formField(apiField string) string {
	if i := strings.IndexAny(apiField, "[."); i > 0 {
		return apiField[:i]
	}
	return apiField
}

// formFields are the fields the subscription form shows errors beside.
var formFields = []string{"url", "eventTypes", "description", "metadata", "ordering", "rateLimit", "active",
	"filter", "headers", "signatureScheme", "sendTraceparent", "auth"}

func (f *subscriptionForm) setErrors(problems []fieldError) {
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	for _, p := range problems {
		name := formField(p.Field)
		reason := p.Reason
		if p.Field != name {
			reason = p.Field + ": " + reason
		}
		if !slices.Contains(formFields, name) {
			f.Problem = strings.TrimSpace(f.Problem + " " + p.Field + ": " + p.Reason + ".")
			continue
		}
		if old := f.Errors[name]; old != "" {
			reason = old + "; " + reason
		}
		f.Errors[name] = reason
	}
}

// setAPIError shows an API error on the form: field errors beside their
// fields, anything else above the form.
func (f *subscriptionForm) setAPIError(ae *client.Error) {
	fields := ae.Fields()
	if len(fields) == 0 {
		f.Problem = apiMessage(ae)
		return
	}
	f.setErrors(fields)
}
