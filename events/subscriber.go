package events

import (
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats.go"
)

// NewSubscriber returns a Watermill subscriber to events over JetStream on
// conn, with a durable consumer named durable shared by every process that
// uses the same name. Subscribe with a subject such as SubjectAll or
// Subject(tenant, "ticket.updated"); each message's UUID is the event id
// and its payload the envelope.
//
// The dispatcher does not use it: it reads JetStream in batches through
// nats.go for throughput. It is the seam for other services that react to
// events with Watermill's router.
func NewSubscriber(conn *nats.Conn, durable string, logger *slog.Logger) (*wmnats.Subscriber, error) {
	sub, err := wmnats.NewSubscriberWithNatsConn(conn, wmnats.SubscriberSubscriptionConfig{
		Unmarshaler:      &wmnats.NATSMarshaler{},
		SubscribersCount: 1,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			TrackMsgId:    true,
			DurablePrefix: durable,
			SubscribeOptions: []nats.SubOpt{
				nats.BindStream(StreamName),
				nats.DeliverNew(),
				nats.AckExplicit(),
			},
		},
	}, watermill.NewSlogLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("new watermill subscriber: %w", err)
	}
	return sub, nil
}
