package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/problem"

	"github.com/onestack/webhooks/internal/kvwatch"
)

// RegistryBucket is the JetStream KV bucket of registered event types.
const RegistryBucket = "event_types"

// Errors of the registry.
var (
	// ErrTypeExists: a type of that name is registered already
	// (problem.ErrConflict).
	ErrTypeExists = problem.New(problem.ErrConflict, "an event type of that name already exists; change it with PATCH")
	// ErrTypeNotFound: no such registered type (problem.ErrNotFound).
	ErrTypeNotFound = problem.NotFound("event type")
	// ErrUnavailable means the registry's bucket could not be reached
	// (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "event type registry unavailable")
)

// ValidationError lists every problem of a type registration or of events
// refused by a publisher.
type ValidationError struct {
	Problems []*FieldError
}

// As makes e, for errors.As, the problem vocabulary's validation error:
// each of its problems one field error.
func (e *ValidationError) As(target any) bool {
	t, ok := target.(**problem.ValidationError)
	if !ok {
		return false
	}
	out := &problem.ValidationError{}
	for _, p := range e.Problems {
		out.Fields = append(out.Fields, problem.FieldError{Field: p.Field, Reason: p.Err.Error()})
	}
	*t = out
	return true
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Limits on a registered type.
const (
	MaxTypeLen        = 100
	MaxTypeDescrLen   = 500
	typeSegmentChars  = "abcdefghijklmnopqrstuvwxyz0123456789_"
	reservedFamilyMsg = "is in a family the webhook product itself emits (webhook, subscription, delivery)"
)

// TypeInput registers a new event type.
type TypeInput struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
}

// TypePatch changes a type; absent fields are left as they are, and a
// null schema or example removes it.
type TypePatch struct {
	Description *string         `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Deprecated  *bool           `json:"deprecated"`
}

// RegistryConfig sets up a Registry; the zero value means the defaults.
type RegistryConfig struct {
	// Builtin is the compiled-in catalog, always present (default
	// DefaultCatalog()).
	Builtin Catalog
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MaxBytes bounds the bucket (0: no bound; JetStream refuses a write
	// past it).
	MaxBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Watch is where the bucket's watch reports that it is down.
	Watch kvwatch.Config
}

// Registry is the live event-type catalog: the built-in types merged with
// those registered in the KV bucket, which every replica watches. A
// registered record of a built-in type's name changes its description,
// schema, example or deprecation; built-in types are never removed, and
// internal ones never changed. Schemas are compiled once per bucket
// revision. It is safe for concurrent use; the catalogs it hands out are
// never modified.
type Registry struct {
	cfg    RegistryConfig
	kv     jetstream.KeyValue
	logger *slog.Logger

	mu      sync.Mutex
	records map[string]*typeEntry
	cur     atomic.Pointer[Catalog]

	watch *kvwatch.Watch
}

// typeRecord is a registered type as the bucket keeps it.
type typeRecord struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
	Deprecated  bool            `json:"deprecated,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

type typeEntry struct {
	rec      typeRecord
	rev      uint64
	compiled *Schema
}

// OpenRegistry creates the bucket if needed, loads it and keeps the
// catalog live until Close.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig, logger *slog.Logger) (*Registry, error) {
	if cfg.Builtin == nil {
		cfg.Builtin = DefaultCatalog()
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kv, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      RegistryBucket,
			Description: "Registered event types: description, JSON Schema, example, deprecation",
			History:     1,
			MaxBytes:    cfg.MaxBytes,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", RegistryBucket, err)
	}
	r := &Registry{cfg: cfg, kv: kv, logger: logger, records: make(map[string]*typeEntry)}
	r.rebuild()
	if r.watch, err = kvwatch.Start(ctx, kv, r.applyEntry, cfg.Watch, logger); err != nil {
		return nil, err
	}
	if err := r.watch.Loaded(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("load event types: %w", err)
	}
	return r, nil
}

// applyEntry takes a record from the bucket into the catalog.
func (r *Registry) applyEntry(e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		return nil // records are never deleted; a purge by hand is ignored
	}
	var rec typeRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return fmt.Errorf("decode event type: %w", err)
	}
	if rec.Type != e.Key() {
		return fmt.Errorf("event type %q stored under another name", rec.Type)
	}
	r.apply(rec, e.Revision())
	return nil
}

// Close stops the watch.
func (r *Registry) Close() { r.watch.Stop() }

// Bucket names the registry's KV bucket.
func (r *Registry) Bucket() string { return RegistryBucket }

// Catalog returns the catalog as it is now: the built-in types first, in
// their order, then the registered ones by name.
func (r *Registry) Catalog() Catalog { return *r.cur.Load() }

// apply takes a record at revision rev into the catalog, unless a newer
// one is already there.
func (r *Registry) apply(rec typeRecord, rev uint64) Type {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.records[rec.Type]; !ok || e.rev < rev {
		e := &typeEntry{rec: rec, rev: rev}
		if len(rec.Schema) > 0 {
			s, problems := CompileSchema(rec.Schema)
			if len(problems) > 0 {
				// Checked when written: only a change of this code can
				// get here. The type stays, without a schema.
				r.logger.Error("event types: a stored schema does not compile; its type is not validated", "type", rec.Type, "problem", problems[0])
			}
			e.compiled = s
		}
		r.records[rec.Type] = e
		r.rebuild()
	}
	t, _ := r.cur.Load().Lookup(rec.Type)
	return t
}

// rebuild makes the catalog from the built-in types and the records.
// Callers hold mu (or own r alone).
func (r *Registry) rebuild() {
	cat := make(Catalog, 0, len(r.cfg.Builtin)+len(r.records))
	for _, t := range r.cfg.Builtin {
		if e, ok := r.records[t.Type]; ok && !t.Internal {
			t = e.typ(t.Internal)
		}
		cat = append(cat, t)
	}
	var extra Catalog
	for name, e := range r.records {
		if !r.cfg.Builtin.Has(name) {
			extra = append(extra, e.typ(false))
		}
	}
	slices.SortFunc(extra, func(a, b Type) int { return strings.Compare(a.Type, b.Type) })
	cat = append(cat, extra...)
	r.cur.Store(&cat)
}

func (e *typeEntry) typ(internal bool) Type {
	return Type{Type: e.rec.Type, Description: e.rec.Description, Internal: internal, Deprecated: e.rec.Deprecated,
		Schema: e.rec.Schema, Example: e.rec.Example, compiled: e.compiled}
}

// Create registers a new type. A name already in the catalog fails with
// ErrTypeExists; a bad input with a *ValidationError.
func (r *Registry) Create(ctx context.Context, in TypeInput) (Type, error) {
	in.Schema, in.Example = present(in.Schema), present(in.Example)
	if p := in.problems(); len(p) > 0 {
		return Type{}, &ValidationError{Problems: p}
	}
	if r.Catalog().Has(in.Type) {
		return Type{}, fmt.Errorf("register %s: %w", in.Type, ErrTypeExists)
	}
	now := r.cfg.Now().UTC()
	rec := typeRecord{Type: in.Type, Description: in.Description, Schema: compact(in.Schema), Example: compact(in.Example), CreatedAt: now, UpdatedAt: now}
	b, _ := json.Marshal(rec)
	rev, err := r.kv.Create(ctx, rec.Type, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Type{}, fmt.Errorf("register %s: %w", in.Type, ErrTypeExists)
	}
	if err != nil {
		return Type{}, fmt.Errorf("register %s: %w: %w", in.Type, ErrUnavailable, err)
	}
	return r.apply(rec, rev), nil
}

// Update changes a type of the catalog, built-in or registered (never an
// internal one). An unknown name fails with ErrTypeNotFound.
func (r *Registry) Update(ctx context.Context, name string, p TypePatch) (Type, error) {
	if p.Description != nil {
		if pr := checkDescription(*p.Description); pr != nil {
			return Type{}, &ValidationError{Problems: []*FieldError{pr}}
		}
	}
	for {
		cur, ok := r.Catalog().Lookup(name)
		if !ok {
			return Type{}, fmt.Errorf("event type %q: %w", name, ErrTypeNotFound)
		}
		if cur.Internal {
			return Type{}, &ValidationError{Problems: []*FieldError{{Field: "type", Err: fmt.Errorf("%q %w and cannot be changed", name, ErrInternalType)}}}
		}
		e, err := r.kv.Get(ctx, name)
		var rec typeRecord
		var rev uint64
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return Type{}, fmt.Errorf("decode event type %s: %w", name, err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			// A built-in type changed for the first time.
			rec = typeRecord{Type: name, Description: cur.Description, CreatedAt: r.cfg.Now().UTC()}
		default:
			return Type{}, fmt.Errorf("read event type %s: %w: %w", name, ErrUnavailable, err)
		}
		if p.Description != nil {
			rec.Description = *p.Description
		}
		if p.Schema != nil {
			rec.Schema = compact(present(p.Schema))
		}
		if p.Example != nil {
			rec.Example = compact(present(p.Example))
		}
		if p.Deprecated != nil {
			rec.Deprecated = *p.Deprecated
		}
		in := TypeInput{Type: name, Description: rec.Description, Schema: rec.Schema, Example: rec.Example}
		if pr := in.problems(); len(pr) > 0 {
			return Type{}, &ValidationError{Problems: pr}
		}
		rec.UpdatedAt = r.cfg.Now().UTC()
		b, _ := json.Marshal(rec)
		if rev == 0 {
			rev, err = r.kv.Create(ctx, name, b)
		} else {
			rev, err = r.kv.Update(ctx, name, b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
			continue // changed meanwhile: read it again
		}
		if err != nil {
			return Type{}, fmt.Errorf("update event type %s: %w: %w", name, ErrUnavailable, err)
		}
		return r.apply(rec, rev), nil
	}
}

// Deprecate flags a type: still published and delivered, refused in new
// subscriptions. Update with Deprecated false takes the flag back.
func (r *Registry) Deprecate(ctx context.Context, name string) (Type, error) {
	yes := true
	return r.Update(ctx, name, TypePatch{Deprecated: &yes})
}

func isWrongLastSequence(err error) bool { return jsretry.RevisionMismatch(err) }

// present turns a JSON null into nothing.
func present(b json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(b); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return b
}

func compact(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// ValidTypeName reports whether name may be registered: dot-separated
// segments of lower-case letters, digits and '_', each starting with a
// letter, at least two of them ("family.action"), at most 100 characters.
func ValidTypeName(name string) bool {
	if len(name) > MaxTypeLen {
		return false
	}
	segs := strings.Split(name, ".")
	if len(segs) < 2 {
		return false
	}
	for _, s := range segs {
		if s == "" || s[0] < 'a' || s[0] > 'z' {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune(typeSegmentChars, rune(s[i])) {
				return false
			}
		}
	}
	return true
}

// reservedFamily reports whether fam is a family of the product's own
// events, which only the platform registers (in its code).
func reservedFamily(fam string) bool {
	switch fam {
	case "webhook", "subscription", "delivery":
		return true
	}
	return false
}

func checkDescription(d string) *FieldError {
	switch {
	case strings.TrimSpace(d) == "":
		return &FieldError{Field: "description", Err: ErrRequired}
	case len(d) > MaxTypeDescrLen:
		return &FieldError{Field: "description", Err: fmt.Errorf("must be at most %d characters", MaxTypeDescrLen)}
	}
	return nil
}

// problems lists every problem of a registration: its name, description,
// schema (compiled) and example (checked against the schema).
func (in TypeInput) problems() []*FieldError {
	var out []*FieldError
	switch {
	case in.Type == "":
		out = append(out, &FieldError{Field: "type", Err: ErrRequired})
	case !ValidTypeName(in.Type):
		out = append(out, &FieldError{Field: "type", Err: errors.New("must be dot-separated lower-case segments of letters, digits and '_', such as \"ticket.escalated\", at most 100 characters")})
	case reservedFamily(Family(in.Type)):
		out = append(out, &FieldError{Field: "type", Err: errors.New(reservedFamilyMsg)})
	}
	if p := checkDescription(in.Description); p != nil {
		out = append(out, p)
	}
	var s *Schema
	if len(in.Schema) > 0 {
		var sp []*FieldError
		s, sp = CompileSchema(in.Schema)
		out = append(out, sp...)
	}
	if len(in.Example) > 0 {
		ex := bytes.TrimSpace(in.Example)
		switch {
		case len(ex) > MaxExampleBytes:
			out = append(out, &FieldError{Field: "example", Err: fmt.Errorf("must be at most %d bytes", MaxExampleBytes)})
		case !validData(ex):
			out = append(out, &FieldError{Field: "example", Err: errors.New("must be a JSON object")})
		case s != nil:
			out = append(out, s.check("example", ex)...)
		}
	}
	return out
}

// Problems lists the problems of a registration without storing it.
func (in TypeInput) Problems() []*FieldError {
	in.Schema, in.Example = present(in.Schema), present(in.Example)
	return in.problems()
}
