package api

import "encoding/json"

// The publish routes read and answer the same few shapes of JSON on every
// event; these functions handle their usual form without reflection. Each
// reader reports false for anything else (escapes, keys in another case,
// repeated keys, nulls, data that is not an object, malformed JSON), and
// the caller then decodes the body with decodeBytes, which gives the same
// value or the error it always gave.
//
// One thing is left to the caller: whether each event's data, taken as
// the object whose brackets balance, is valid JSON. Where it is, the body
// is JSON and decodeBytes would give the same value; where it is not,
// decodeBytes refuses the body (readEvents answers so).
// FuzzEventFastPath holds them to both.

// eventBody reads the body of POST /api/events.
func eventBody(b []byte) (eventInput, bool) {
	p := scan{b: b}
	if in, ok := p.event(); ok && p.end() {
		return in, true
	}
	// Nothing half read is handed on to the full decoder.
	return eventInput{}, false
}

// batchBody reads the body of POST /api/events/batch: {"events":[...]}.
func batchBody(b []byte) ([]eventInput, bool) {
	p := scan{b: b}
	if !p.next('{') {
		return nil, false
	}
	if k, ok := p.plain(); !ok || string(k) != "events" || !p.next(':') || !p.next('[') {
		return nil, false
	}
	// One event is the usual batch: room for it without growing.
	evts := make([]eventInput, 0, 1)
	if !p.next(']') {
		for {
			in, ok := p.event()
			if !ok {
				return nil, false
			}
			evts = append(evts, in)
			if p.next(',') {
				continue
			}
			if !p.next(']') {
				return nil, false
			}
			break
		}
	}
	if !p.next('}') || !p.end() {
		return nil, false
	}
	return evts, true
}

// scan reads JSON tokens from b at i.
type scan struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (p *scan) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next consumes c, after whitespace, if it comes next.
func (p *scan) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *scan) end() bool {
	p.space()
	return p.i == len(p.b)
}

// plain reads a string of printable ASCII without escapes (what encoding/json
// gives back unchanged) and returns its bytes, unquoted.
func (p *scan) plain() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	for j := p.i; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[p.i:j]
			p.i = j + 1
			return s, true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

// object reads what may be a JSON object, from its '{' to the bracket
// that balances it, strings skipped, and returns its bytes as they are in
// b, as json.RawMessage would hold them. Whether they are valid JSON it
// leaves to the caller (see above).
func (p *scan) object() ([]byte, bool) {
	p.space()
	start := p.i
	if start >= len(p.b) || p.b[start] != '{' {
		return nil, false
	}
	depth := 0
	for j := start; j < len(p.b); j++ {
		switch p.b[j] {
		case '"':
			for j++; j < len(p.b) && p.b[j] != '"'; j++ {
				if p.b[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				p.i = j + 1
				return p.b[start:p.i], true
			}
		}
	}
	return nil, false
}

// event reads one event input: an object of type, id and data, each at
// most once, type and id plain strings, data an object.
func (p *scan) event() (eventInput, bool) {
	var in eventInput
	if !p.next('{') {
		return in, false
	}
	if p.next('}') {
		return in, true
	}
	var typ, id, data bool
	for {
		k, ok := p.plain()
		if !ok || !p.next(':') {
			return in, false
		}
		switch {
		case string(k) == "type" && !typ:
			typ = true
			var v []byte
			v, ok = p.plain()
			in.Type = string(v)
		case string(k) == "id" && !id:
			id = true
			var v []byte
			v, ok = p.plain()
			s := string(v)
			in.ID = &s
		case string(k) == "data" && !data:
			data = true
			in.Data, ok = p.object()
		default:
			return in, false
		}
		if !ok {
			return in, false
		}
		if p.next(',') {
			continue
		}
		return in, p.next('}')
	}
}

// idAnswer is POST /api/events' answer, {"id":"..."} and a newline, as
// writeJSON writes it.
func idAnswer(id string) []byte {
	b := make([]byte, 0, len(`{"id":""}`)+len(id)+1)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	return append(b, "}\n"...)
}

// idsAnswer is POST /api/events/batch's answer, {"ids":["...",...]} and
// a newline, as writeJSON writes it.
func idsAnswer(ids []string) []byte {
	n := len(`{"ids":[]}`) + 1
	for _, id := range ids {
		n += len(id) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, id)
	}
	return append(b, "]}\n"...)
}

// appendJSONString appends s quoted as json.Marshal quotes it: printable
// ASCII other than the quote, the backslash and <, > and & as it is (the
// ids answered are letters, digits, '_' and '-'), anything else through
// encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
