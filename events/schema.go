package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Bounds on what a registered type carries.
const (
	// MaxSchemaBytes bounds a type's JSON Schema document.
	MaxSchemaBytes = 64 << 10
	// MaxExampleBytes bounds a type's example data.
	MaxExampleBytes = 16 << 10
	// maxSchemaProblems bounds the problems one validation reports.
	maxSchemaProblems = 20
)

// schemaDialect is the only $schema a type's schema may name; a schema
// without $schema is read as this draft.
const schemaDialect = "https://json-schema.org/draft/2020-12/schema"

// schemaURL is where a compiled schema pretends to live: a relative $ref
// resolves under it, and, since nothing is ever loaded, fails to compile.
const schemaURL = "https://schemas.onestack.invalid/event-type.json"

// Schema is a compiled JSON Schema (draft 2020-12) that an event type's
// data must satisfy. It is safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// errNoLoading refuses every $ref to a document outside the schema: a
// registry never reads files or the network on an operator's behalf.
var errNoLoading = errors.New("schemas may not refer to other documents")

type noLoader struct{}

func (noLoader) Load(string) (any, error) { return nil, errNoLoading }

// CompileSchema compiles a type's schema document: a JSON object of at most
// MaxSchemaBytes, draft 2020-12 ($schema absent or naming it), with no
// reference to another document. Format keywords are asserted. Its
// problems name JSON pointers into the document ("schema/properties/x").
func CompileSchema(doc json.RawMessage) (*Schema, []*FieldError) {
	doc = bytes.TrimSpace(doc)
	if len(doc) > MaxSchemaBytes {
		return nil, []*FieldError{{Field: "schema", Err: fmt.Errorf("must be at most %d bytes", MaxSchemaBytes)}}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, []*FieldError{{Field: "schema", Err: errors.New("must be a JSON object")}}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, []*FieldError{{Field: "schema", Err: errors.New("must be a JSON object")}}
	}
	if d, ok := obj["$schema"]; ok && d != schemaDialect && d != schemaDialect+"#" {
		return nil, []*FieldError{{Field: "schema/$schema", Err: errors.New("must be " + schemaDialect + " (draft 2020-12) or absent")}}
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schemaURL, v); err != nil {
		return nil, []*FieldError{{Field: "schema", Err: errors.New("could not be read")}}
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, schemaProblems(err)
	}
	return &Schema{s: s}, nil
}

// schemaProblems explains why a schema does not compile.
func schemaProblems(err error) []*FieldError {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		if ve, ok := sve.Err.(*jsonschema.ValidationError); ok {
			return problemsAt("schema", ve)
		}
	}
	var le *jsonschema.LoadURLError
	if errors.As(err, &le) {
		return []*FieldError{{Field: "schema", Err: fmt.Errorf("refers to %s: %w", le.URL, errNoLoading)}}
	}
	// Other compile errors (a bad regular expression, an unresolvable
	// pointer, a cycle) carry no location; their text names the keyword.
	msg := err.Error()
	msg = strings.ReplaceAll(msg, schemaURL, "")
	return []*FieldError{{Field: "schema", Err: errors.New(msg)}}
}

// Check validates data (a JSON object) and returns one problem per failing
// location, each named "data" followed by the JSON pointer into data
// ("data/priority", "data/items/0/sku"), at most 20.
func (s *Schema) Check(data json.RawMessage) []*FieldError {
	return s.check("data", data)
}

func (s *Schema) check(field string, data json.RawMessage) []*FieldError {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return []*FieldError{{Field: field, Err: ErrInvalidData}}
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []*FieldError{{Field: field, Err: errors.New("does not match its type's schema")}}
	}
	return problemsAt(field, ve)
}

// problemsAt flattens a validation error into its leaves, one problem per
// instance location (the first reason found there), each a JSON pointer
// under field. A missing required property is named by its own pointer.
func problemsAt(field string, ve *jsonschema.ValidationError) []*FieldError {
	var out []*FieldError
	printer := message.NewPrinter(language.English)
	seen := map[string]bool{}
	add := func(ptr, reason string) {
		if seen[ptr] || len(out) >= maxSchemaProblems {
			return
		}
		seen[ptr] = true
		out = append(out, &FieldError{Field: field + ptr, Err: errors.New(reason)})
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := pointer(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, p := range k.Missing {
				add(ptr+"/"+escapePointer(p), "is required")
			}
			return
		case *kind.DependentRequired:
			for _, p := range k.Missing {
				add(ptr+"/"+escapePointer(p), "is required when "+strconv.Quote(k.Prop)+" is present")
			}
			return
		}
		add(ptr, e.ErrorKind.LocalizedString(printer))
	}
	walk(ve)
	slices.SortStableFunc(out, func(a, b *FieldError) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// pointer is the JSON pointer (RFC 6901) of an instance location.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

func escapePointer(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

// dataProblems checks data against type t's schema, if it has one.
func (c Catalog) dataProblems(t string, data json.RawMessage) []*FieldError {
	return c.schemaProblems(c.index(t), data)
}

// schemaProblems checks data against the schema of c's i-th type, if i
// is a type's place (not -1) and it has one.
func (c Catalog) schemaProblems(i int, data json.RawMessage) []*FieldError {
	if i < 0 || c[i].compiled == nil {
		return nil
	}
	return c[i].compiled.Check(data)
}
