package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DefaultMaxBody is the largest request body accepted.
const DefaultMaxBody = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error","code":"INTERNAL"}`)
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody answers status with b, a JSON document and its newline, in
// one Write.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// readBody reads a request body of at most max bytes; an empty body gives
// nil. A body must be declared application/json.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, max), r.ContentLength, max)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
				Message: fmt.Sprintf("request body is larger than %d bytes", max), Details: map[string]any{"limit": max}}
		}
		return nil, errInvalidJSON("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
			Message: "request body must be application/json"}
	}
	return body, nil
}

// readAll is io.ReadAll into a buffer sized for a body of the declared
// length (within max, and up to readAhead), so that a body whose length is
// known is read without growing the buffer, nor a small one given
// io.ReadAll's 512 bytes. A wrong length costs only growth: what is read
// is what r holds. Past readAhead the buffer grows as the body arrives, so
// a client that declares a megabyte and sends it slowly, or never, holds
// no more memory than it sent.
func readAll(r io.Reader, length, max int64) ([]byte, error) {
	size := 512
	if length >= 0 && length < max {
		// One byte more, for the read that finds the end.
		size = int(min(length, readAhead)) + 1
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// readAhead is the most readAll reserves for a body before it arrives:
// the usual event or batch is smaller and is read into one buffer.
const readAhead = 64 << 10

// isJSON reports whether a Content-Type is application/json: the plain
// header that nearly every request carries is told without parsing it.
func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// decode reads a required JSON body into v, refusing unknown fields, wrong
// types and trailing data.
func decode(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	body, err := readRequired(w, r, max)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// readRequired is readBody of a body that must not be empty.
func readRequired(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body, err := readBody(w, r, max)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, errInvalidJSON("request body is required")
	}
	return body, nil
}

func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errInvalidJSON(describeJSONError(err))
	}
	if dec.More() {
		return errInvalidJSON("request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errInvalidJSON("request body has data after the JSON value")
	}
	return nil
}

// describeJSONError explains a decoding error without echoing Go types.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("request body is not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q has the wrong type (got %s)", te.Field, te.Value)
		}
		return fmt.Sprintf("request body has the wrong type (got %s)", te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for an unknown field; its text
		// is the only place the field's name is found.
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "request body is truncated JSON"
	}
	return "request body is not valid JSON"
}
