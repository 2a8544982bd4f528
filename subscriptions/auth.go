package subscriptions

import (
	"bytes"
	"encoding/json"

	"github.com/onestack/webhooks/endpointauth"
)

// AuthPatch is "auth" in a subscription's update: absent leaves the
// authentication as it is, null removes it, an object replaces it whole
// (its secrets are write-only, so they are given again).
type AuthPatch struct {
	// Set: the field was given, null or not.
	Set bool
	// Value is the new authentication; nil with Set removes it.
	Value *endpointauth.Config
}

// UnmarshalJSON reads null or an auth object, refusing unknown fields as
// the rest of the body does.
func (p *AuthPatch) UnmarshalJSON(b []byte) error {
	p.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		p.Value = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c endpointauth.Config
	if err := dec.Decode(&c); err != nil {
		return err
	}
	p.Value = &c
	return nil
}

// MarshalJSON writes the patch back as it was read: null, or the object
// (absent is the zero AuthPatch, left out by omitzero).
func (p AuthPatch) MarshalJSON() ([]byte, error) {
	if p.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(p.Value)
}

// Auth returns the subscription's endpoint authentication, secrets
// included, for the delivery to use; nil when it has none. The value is
// shared and must not be modified.
func (s *Subscription) Auth() *endpointauth.Config { return s.auth }

// AuthView returns what answers show of the endpoint authentication: its
// type and non-secret parts; nil when it has none.
func (s *Subscription) AuthView() *endpointauth.Public {
	if s.auth == nil {
		return nil
	}
	p := s.auth.Public()
	return &p
}

// authProblems checks the "auth" of a creation or an update against the
// destination policy; fields are named "auth.<field>".
func (r *Rules) authProblems(in any) []FieldError {
	var c *endpointauth.Config
	switch v := in.(type) {
	case *CreateInput:
		c = v.Auth
	case *PatchInput:
		c = v.Auth.Value
	}
	if c == nil {
		return nil
	}
	var out []FieldError
	for _, p := range c.Problems(r.policy) {
		out = append(out, FieldError{Field: "auth." + p.Field, Reason: p.Reason})
	}
	return out
}

// prepareAuth readies a stored or new authentication for sharing (see
// endpointauth.Config.Prepared); nil stays nil.
func prepareAuth(c *endpointauth.Config) *endpointauth.Config {
	if c == nil {
		return nil
	}
	return c.Prepared()
}
