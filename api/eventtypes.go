package api

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// EventTypes is what the operator API asks of the event-type registry.
// Implementations return events.ErrTypeExists, events.ErrTypeNotFound,
// *events.ValidationError and events.ErrUnavailable (errors of package
// problem), wrapped as they like.
type EventTypes interface {
	events.Source
	Create(ctx context.Context, in events.TypeInput) (events.Type, error)
	Update(ctx context.Context, name string, p events.TypePatch) (events.Type, error)
	Deprecate(ctx context.Context, name string) (events.Type, error)
}

// eventTypeView is one type with its schema and example.
type eventTypeView struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Internal    bool            `json:"internal"`
	Deprecated  bool            `json:"deprecated"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
}

func viewEventType(t events.Type) eventTypeView {
	v := eventTypeView{Type: t.Type, Description: t.Description, Internal: t.Internal, Deprecated: t.Deprecated,
		Schema: json.RawMessage("null"), Example: json.RawMessage("null")}
	if len(t.Schema) > 0 {
		v.Schema = t.Schema
	}
	if len(t.Example) > 0 {
		v.Example = t.Example
	}
	return v
}

func (a *API) eventType(w http.ResponseWriter, r *http.Request, _ *caller) error {
	t, ok := a.cfg.Catalog.Catalog().Lookup(r.PathValue("type"))
	if !ok {
		return errNotFound("event type")
	}
	b, _ := json.Marshal(viewEventType(t))
	h := fnv.New64a()
	h.Write(b)
	etag := fmt.Sprintf(`"t%x"`, h.Sum64())
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=0, must-revalidate")
	if etagMatches(r.Header.Get("If-None-Match"), etag, false) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, http.StatusOK, json.RawMessage(b))
	return nil
}

// registry returns the registry, or a 404 when the server has none.
func (a *API) registry() (EventTypes, error) {
	if a.cfg.Types == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "the event-type registry is not enabled on this server"}
	}
	return a.cfg.Types, nil
}

func (a *API) createEventType(w http.ResponseWriter, r *http.Request, _ *caller) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	var in events.TypeInput
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	t, err := reg.Create(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/event-types/"+t.Type)
	writeJSON(w, http.StatusCreated, viewEventType(t))
	return nil
}

func (a *API) patchEventType(w http.ResponseWriter, r *http.Request, _ *caller) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	name := r.PathValue("type")
	if !reg.Catalog().Has(name) {
		return errNotFound("event type")
	}
	var in events.TypePatch
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	t, err := reg.Update(r.Context(), name, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewEventType(t))
	return nil
}

func (a *API) deprecateEventType(w http.ResponseWriter, r *http.Request, _ *caller) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	name := r.PathValue("type")
	if !reg.Catalog().Has(name) {
		return errNotFound("event type")
	}
	t, err := reg.Deprecate(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewEventType(t))
	return nil
}

// viewExtras is what a subscription's view shows of its filter (null
// without one) and custom headers (their names, never their values).
func viewExtras(s *subscriptions.Subscription) (*string, []string) {
	var f *string
	if s.Filter != "" {
		expr := s.Filter
		f = &expr
	}
	names := s.HeaderNames()
	if names == nil {
		names = []string{}
	}
	return f, names
}
