package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/opevents"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// OperatorConfig is the operator's endpoint, which gets a copy of every
// operational event of every tenant, signed (Standard Webhooks) and
// retried like any delivery: the one subscription of the operator's own
// tenant (subscriptions.OperatorTenant), brought to this configuration at
// every start. It is a destination like any other: private addresses
// and plain http only where Egress allows them.
type OperatorConfig struct {
	// URL is the endpoint; empty: none (the subscription, if a previous
	// start made one, is deleted).
	URL string
	// Secret signs its webhooks ("whsec_" and base64); required with URL.
	Secret string
}

// validate checks the endpoint as a subscription's create would (for
// Config.Validate, before Start connects to anything).
func (c OperatorConfig) validate(rules *subscriptions.Rules) error {
	if c.URL == "" {
		if c.Secret != "" {
			return errors.New("operator webhook: a secret without a url")
		}
		return nil
	}
	if c.Secret == "" {
		return errors.New("operator webhook: a url needs a secret (whsec_ and 24 to 64 random bytes in base64)")
	}
	secret := c.Secret
	in := subscriptions.CreateInput{URL: c.URL, EventTypes: []string{events.WildcardAll}, Secret: &secret}
	if err := rules.Check(&in); err != nil {
		var ve *problem.ValidationError
		if errors.As(err, &ve) {
			var msgs []string
			for _, f := range ve.Fields {
				msgs = append(msgs, f.Field+" "+f.Reason)
			}
			return fmt.Errorf("operator webhook: %s", strings.Join(msgs, "; "))
		}
		return fmt.Errorf("operator webhook: %w", err)
	}
	return nil
}

// operational starts the emitter of operational events (with the bucket
// that decides which replica raises an event every replica finds due) and
// the sweep of client certificates, and brings the operator's endpoint to
// its configuration (which Config.Validate checked).
func (s *Server) operational(ctx context.Context, reg prometheus.Registerer) error {
	op := s.cfg.Operator
	if err := s.store.EnsureOperator(ctx, op.URL, op.Secret); err != nil {
		return fmt.Errorf("operator webhook: %w", err)
	}
	operator := ""
	if op.URL != "" {
		operator = subscriptions.OperatorTenant
	}
	once, err := opevents.OpenOnce(ctx, s.js, opevents.OnceConfig{Replicas: s.cfg.Replicas, MaxBytes: s.budget.small})
	if err != nil {
		return err
	}
	s.needs = append(s.needs, need{"bucket", opevents.OnceBucket})
	s.ops = opevents.New(s.js, opevents.Config{Operator: operator, Once: once}, reg, s.logger)
	s.certs = opevents.StartCertificates(s.ops, s.store.Index().WithAuth,
		opevents.CertificatesConfig{Warning: s.cfg.CertificateWarning, Every: s.cfg.CertificateSweep}, reg)
	return nil
}
