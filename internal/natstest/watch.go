package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/poll"
)

// BreakWatches ends every watch of a KV bucket the way nats.go ends one
// whose ordered consumer it cannot rebuild: it closes the watch's Updates
// channel. Each watch's consumer is replaced by one that delivers to the
// watch's inbox from the start, a gap nats.go answers by rebuilding the
// consumer, and the bucket's stream takes no more consumers, so the
// rebuild fails. It returns once no watch listens any more. Watches made
// after it fail too, until mend lets consumers in again.
//
// Each watch must have received an entry (the bucket held a value when it
// started): a watch that has received none takes the new consumer's first
// entry as its own.
func BreakWatches(t testing.TB, js jetstream.JetStream, bucket string) (mend func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatalf("break watches of %s: %v", bucket, err)
	}
	var inboxes []string
	for ci := range st.ListConsumers(ctx).Info() {
		if ci.Config.DeliverSubject == "" {
			continue // a pull consumer: not a watch
		}
		if ci.Delivered.Consumer == 0 {
			t.Fatalf("break watches of %s: watch %s has received no entry", bucket, ci.Name)
		}
		if err := st.DeleteConsumer(ctx, ci.Name); err != nil {
			t.Fatalf("break watches of %s: %v", bucket, err)
		}
		inboxes = append(inboxes, ci.Config.DeliverSubject)
	}
	if len(inboxes) == 0 {
		t.Fatalf("break watches of %s: no watch", bucket)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("break watches of %s: %v", bucket, err)
	}
	cfg := info.Config
	limit := cfg.MaxConsumers
	cfg.MaxConsumers = len(inboxes)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("break watches of %s: limit its consumers: %v", bucket, err)
	}
	var names []string
	for i, inbox := range inboxes {
		name := fmt.Sprintf("breaker%d", i)
		if _, err := js.CreatePushConsumer(ctx, cfg.Name, jetstream.ConsumerConfig{
			Name: name, DeliverSubject: inbox, AckPolicy: jetstream.AckNonePolicy,
		}); err != nil {
			t.Fatalf("break watches of %s: %v", bucket, err)
		}
		names = append(names, name)
	}
	// nats.go leaves the inbox at once when it sees the gap.
	for _, name := range names {
		listens := func() bool {
			ci, err := st.PushConsumer(ctx, name)
			return err != nil || ci.CachedInfo().PushBound
		}
		if !poll.Within(30*time.Second, func() bool { return !listens() }) {
			t.Fatalf("break watches of %s: a watch still listens after 30 s", bucket)
		}
	}
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range names {
			if err := st.DeleteConsumer(ctx, name); err != nil {
				t.Errorf("mend watches of %s: %v", bucket, err)
			}
		}
		cfg.MaxConsumers = limit
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Errorf("mend watches of %s: %v", bucket, err)
		}
	}
}
