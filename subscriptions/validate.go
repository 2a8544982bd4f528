package subscriptions

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/filter"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/signature"
)

// FieldError is one problem with one field of a request: the
// vocabulary's, which the API answers.
type FieldError = problem.FieldError

// ValidationError lists every problem found in a request; the API answers
// it with 400 VALIDATION_FAILED.
type ValidationError = problem.ValidationError

// Limits on subscription fields.
const (
	MaxEventTypes     = 100
	MaxDescription    = 500
	MaxMetadataKeys   = 50
	MaxMetadataKeyLen = 40
	MaxMetadataValLen = 500
	// MinDeliveryRate and MaxDeliveryRate bound a subscription's pace
	// (RateLimit, deliveries per second) when it has one: at the floor, one
	// delivery per 100 s, a replay's 1,000 waiting records drain in about
	// 28 hours (at 0.0001 a second they took four months).
	MinDeliveryRate = 0.01
	MaxDeliveryRate = 10_000
)

// CreateInput is the body of a subscription's creation.
type CreateInput struct {
	URL         string            `json:"url" validate:"required,webhookurl"`
	EventTypes  []string          `json:"eventTypes" validate:"required,min=1,max=100,unique,dive,eventtype"`
	Description string            `json:"description" validate:"max=500"`
	Metadata    map[string]string `json:"metadata" validate:"max=50,dive,keys,min=1,max=40,endkeys,max=500"`
	Active      *bool             `json:"active"`
	Secret      *string           `json:"secret" validate:"omitnil,whsecret"`
	RateLimit   *float64          `json:"rateLimit"`
	Ordering    *string           `json:"ordering" validate:"omitnil,oneof=fifo none"`
	// RateLimit, Filter and Headers are checked by Rules beyond their
	// tags (see settings.go).
	Filter  *string           `json:"filter"`
	Headers map[string]string `json:"headers"`
	// SignatureScheme is "v1" (HMAC, the default) or "v1a" (Ed25519).
	SignatureScheme *string `json:"signatureScheme" validate:"omitnil,oneof=v1 v1a"`
	// Auth authenticates deliveries to the endpoint: OAuth2 client
	// credentials or a TLS client certificate (checked by Rules, see
	// auth.go); nil or null: none.
	Auth *endpointauth.Config `json:"auth"`
	// SendTraceparent false sends webhooks without a traceparent header
	// (default true).
	SendTraceparent *bool `json:"sendTraceparent"`
}

// PatchInput is the body of a subscription's update; nil fields are left
// as they are.
type PatchInput struct {
	URL         *string            `json:"url" validate:"omitnil,webhookurl"`
	EventTypes  *[]string          `json:"eventTypes" validate:"omitnil,min=1,max=100,unique,dive,eventtype"`
	Description *string            `json:"description" validate:"omitnil,max=500"`
	Metadata    *map[string]string `json:"metadata" validate:"omitnil,max=50,dive,keys,min=1,max=40,endkeys,max=500"`
	Active      *bool              `json:"active"`
	RateLimit   *float64           `json:"rateLimit"`
	Ordering    *string            `json:"ordering" validate:"omitnil,oneof=fifo none"`
	// Filter "" removes the filter; Headers {} removes every header.
	Filter  *string            `json:"filter"`
	Headers *map[string]string `json:"headers"`
	// SignatureScheme switches the scheme: a fresh secret or key pair of
	// the new one signs from then on, and the previous key keeps signing
	// for the rotation overlap.
	SignatureScheme *string `json:"signatureScheme" validate:"omitnil,oneof=v1 v1a"`
	// Auth replaces the endpoint authentication; null removes it.
	Auth AuthPatch `json:"auth,omitzero"`
	// SendTraceparent turns the traceparent header on or off.
	SendTraceparent *bool `json:"sendTraceparent"`
}

// TenantInput is the body of a tenant's creation.
type TenantInput struct {
	Name      string `json:"name" validate:"required,min=1,max=200"`
	RateLimit *int   `json:"rateLimit" validate:"omitnil,min=1,max=1000000"`
	// Limits are the tenant's own limits, if any (see TenantPatch).
	Limits *limits.Patch `json:"limits"`
}

// TenantPatch is the body of a tenant's update.
type TenantPatch struct {
	Name      *string `json:"name" validate:"omitnil,min=1,max=200"`
	RateLimit *int    `json:"rateLimit" validate:"omitnil,min=1,max=1000000"`
	// Limits changes the limits it names: a number sets one, null returns
	// it to the default. limits.requestsPerMinute is rateLimit.
	Limits *limits.Patch `json:"limits"`
}

// limitProblems lists the problems of a tenant's limits in a creation or
// an update: each value out of its bounds, and a requestsPerMinute that
// differs from a rateLimit given with it.
func limitProblems(in any) []FieldError {
	var p *limits.Patch
	var rate *int
	switch v := in.(type) {
	case *TenantInput:
		p, rate = v.Limits, v.RateLimit
	case *TenantPatch:
		p, rate = v.Limits, v.RateLimit
	}
	if p == nil {
		return nil
	}
	var out []FieldError
	for _, pr := range p.Problems() {
		out = append(out, FieldError{Field: "limits." + pr.Name, Reason: pr.Reason})
	}
	if rpm := p.RequestsPerMinute; rate != nil && rpm.Given() {
		if v, ok := rpm.Value(); ok && v != int64(*rate) {
			out = append(out, FieldError{Field: "limits." + limits.RequestsPerMinute,
				Reason: "is rateLimit: give one of them, or both the same"})
		}
	}
	return out
}

// Rules validates inputs against the event catalog and the destination
// policy. It is safe for concurrent use.
type Rules struct {
	v      *validator.Validate
	policy egress.Policy

	catalog events.Source
	filters *filter.Compiler
}

// NewRules returns the validation rules for catalog, read at every check
// (a fixed events.Catalog, or a live events.Registry), and policy.
func NewRules(catalog events.Source, policy egress.Policy) *Rules {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	r := &Rules{v: v, policy: policy, catalog: catalog, filters: newFilterCompiler()}
	must(v.RegisterValidation("webhookurl", func(fl validator.FieldLevel) bool {
		return policy.CheckURL(fl.Field().String()) == nil
	}))
	must(v.RegisterValidation("eventtype", func(fl validator.FieldLevel) bool {
		return catalog.Catalog().ValidPattern(fl.Field().String())
	}))
	must(v.RegisterValidation("whsecret", func(fl validator.FieldLevel) bool {
		_, err := signature.ParseSecret(fl.Field().String())
		return err == nil && strings.HasPrefix(fl.Field().String(), signature.SecretPrefix)
	}))
	return r
}

func must(err error) {
	if err != nil {
		panic(err) // a programmer's mistake in a tag registration
	}
}

// Check validates in (a pointer to one of the input types) and returns a
// *ValidationError listing every problem, or nil.
func (r *Rules) Check(in any) error { return r.check(in, nil) }

// check validates in; kept lists the event types a patched subscription
// already has, which may stay even if deprecated since.
func (r *Rules) check(in any, kept []string) error {
	out := &ValidationError{}
	if err := r.v.Struct(in); err != nil {
		var verrs validator.ValidationErrors
		if !errors.As(err, &verrs) {
			return fmt.Errorf("validate: %w", err)
		}
		for _, fe := range verrs {
			out.Fields = append(out.Fields, FieldError{Field: fieldPath(fe.Namespace()), Reason: r.reason(fe)})
		}
	}
	out.Fields = append(out.Fields, r.settingProblems(in, kept)...)
	out.Fields = append(out.Fields, limitProblems(in)...)
	out.Fields = append(out.Fields, signingProblems(in)...)
	out.Fields = append(out.Fields, r.authProblems(in)...)
	if len(out.Fields) == 0 {
		return nil
	}
	return out
}

// fieldPath drops the struct name validator puts first:
// "CreateInput.eventTypes[1]" → "eventTypes[1]".
func fieldPath(ns string) string {
	_, rest, ok := strings.Cut(ns, ".")
	if !ok {
		return ns
	}
	return rest
}

func (r *Rules) reason(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "webhookurl":
		s, _ := fe.Value().(string)
		if err := r.policy.CheckURL(s); err != nil {
			return err.Error()
		}
		return "is not an allowed destination"
	case "eventtype":
		return fmt.Sprintf("%q is not an event type of the catalog, a family wildcard such as \"ticket.*\", or \"*\"", fe.Value())
	case "whsecret":
		return "must be \"whsec_\" followed by the base64 of 24 to 64 random bytes"
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "unique":
		return "must not repeat an entry"
	case "min":
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "must have at least " + fe.Param() + " entries"
		}
		if fe.Kind() == reflect.String {
			return "must be at least " + fe.Param() + " characters"
		}
		return "must be at least " + fe.Param()
	case "max":
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "must have at most " + fe.Param() + " entries"
		}
		if fe.Kind() == reflect.String {
			return "must be at most " + fe.Param() + " characters"
		}
		return "must be at most " + fe.Param()
	}
	return "is invalid (" + fe.Tag() + ")"
}
