package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/jsretry"
)

// The operator's tenant and its one subscription, the operator's endpoint,
// which gets a copy of every operational event of every tenant. Their ids
// are fixed (the ULID of time zero), so every replica names the same ones;
// the operator may give the tenant an API key (POST
// /admin/tenants/{id}/keys) to read the endpoint's deliveries.
const (
	OperatorTenant       = tenantIDPrefix + "00000000000000000000000000"
	OperatorSubscription = subscriptionIDPrefix + "00000000000000000000000000"
)

// EnsureOperator makes the operator's tenant and, with url set, its
// subscription to url, signed with secret, for every event type, active;
// or brings them to that. With url empty it deletes the subscription.
// url and secret must have passed Rules.Check. Every replica calls it at
// start: the flags of the last one started win. A store never given a
// url makes no tenant.
func (s *Store) EnsureOperator(ctx context.Context, url, secret string) error {
	_, err := s.Tenant(OperatorTenant)
	if url == "" {
		if errors.Is(err, ErrNotFound) {
			return nil // never configured: no tenant is made
		}
		err := s.DeleteSubscription(ctx, OperatorTenant, OperatorSubscription)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete the operator's subscription: %w", err)
		}
		return nil
	}
	if errors.Is(err, ErrNotFound) {
		t := Tenant{ID: OperatorTenant, Name: "operator", CreatedAt: s.cfg.Now().UTC()}
		b, _ := json.Marshal(t)
		rev, err := jsretry.Create(ctx, s.tenants, t.ID, b)
		switch {
		case err == nil:
			t.Revision = rev
			s.idx.putTenant(&t, false)
		case errors.Is(err, jetstream.ErrKeyExists):
		default:
			return storeErr("create the operator's tenant", err)
		}
	}
	all := []string{events.WildcardAll}
	for {
		cur, err := s.LoadSubscription(ctx, OperatorTenant, OperatorSubscription)
		if errors.Is(err, ErrNotFound) {
			now := s.cfg.Now().UTC()
			sub := Subscription{ID: OperatorSubscription, TenantID: OperatorTenant, URL: url, EventTypes: all,
				Description: "the operator's endpoint (--operator-webhook-url): every operational event of every tenant",
				Metadata:    map[string]string{}, Active: true, CreatedAt: now, UpdatedAt: now,
				secrets: []secretEntry{{Secret: secret}}}
			b, err := encodeSub(&sub)
			if err != nil {
				return err
			}
			rev, err := jsretry.Create(ctx, s.subs, subKey(OperatorTenant, sub.ID), b)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another replica made it: brought to these flags below
			}
			if err != nil {
				return storeErr("create the operator's subscription", err)
			}
			sub.Revision = rev
			parseSecrets(sub.secrets)
			s.idx.putSub(&sub, false)
			return nil
		}
		if err != nil {
			return err
		}
		if cur.URL == url && cur.Active && slices.Equal(cur.EventTypes, all) && cur.Secret() == secret && len(cur.secrets) == 1 {
			return nil
		}
		_, err = s.UpdateSubscription(ctx, OperatorTenant, OperatorSubscription, nil, func(sub *Subscription) error {
			sub.URL, sub.EventTypes, sub.Active, sub.DisabledReason = url, all, true, ""
			sub.SignatureScheme = ""
			sub.secrets = []secretEntry{{Secret: secret}}
			parseSecrets(sub.secrets)
			return nil
		})
		return err
	}
}
