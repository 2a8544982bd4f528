package events

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
)

// WithTypes returns a copy of p that refuses, with a *ValidationError and
// before publishing anything, events whose data fails the JSON Schema
// their type has in types (live: a schema registered later applies from
// then on). Types without a schema, and types types does not know, are
// published as before: the publisher checks data, not the catalog.
func (p *Publisher) WithTypes(types Source) *Publisher {
	q := *p
	q.types = types
	return &q
}

// checkEvents validates every event's data against its type's schema;
// problems name the event by its place ("events[2].data/priority") when
// there are several.
func (p *Publisher) checkEvents(evts []Event) error {
	if p.types == nil {
		return nil
	}
	cat := p.types.Catalog()
	var all []*FieldError
	for i := range evts {
		problems := cat.dataProblems(evts[i].Type, evts[i].Data)
		for _, pr := range problems {
			if len(evts) > 1 {
				pr.Field = "events[" + strconv.Itoa(i) + "]." + pr.Field
			}
		}
		all = append(all, problems...)
	}
	if len(all) > 0 {
		return &ValidationError{Problems: all}
	}
	return nil
}

// checkMessages validates the envelopes published through Watermill on an
// event subject: their data against their type's schema.
func (p *Publisher) checkMessages(topic string, messages []*message.Message) error {
	if p.types == nil {
		return nil
	}
	_, typ, err := ParseSubject(topic)
	if err != nil {
		return nil
	}
	if t, ok := p.types.Catalog().Lookup(typ); !ok || t.compiled == nil {
		return nil
	}
	evts := make([]Event, 0, len(messages))
	for _, m := range messages {
		e, err := Parse(m.Payload)
		if err != nil {
			return &ValidationError{Problems: []*FieldError{{Field: "data", Err: ErrInvalidData}}}
		}
		e.Type = typ
		evts = append(evts, e)
	}
	return p.checkEvents(evts)
}
