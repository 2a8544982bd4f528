// Package filter compiles and evaluates subscription payload filters:
// expressions in CEL (https://cel.dev) over an event's type, data and
// occurredAt, such as
//
//	data.status in ["open", "pending"] && data.priority == "high"
//
// An expression is parsed and type-checked once, when a subscription is
// written, and evaluated at fan-out under a cost limit. This package is the
// one place that knows CEL.
package filter

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Limits of a filter.
const (
	// MaxLen bounds an expression's length in bytes.
	MaxLen = 1024
	// CostLimit bounds one evaluation's cost, in CEL's units (about one per
	// comparison or field access; a comprehension costs per element). An
	// evaluation past it fails, and its event does not match.
	CostLimit = 10_000
	// maxNesting bounds the parser's recursion.
	maxNesting = 32
)

// Error is a filter that does not compile: where and why. Line and Column
// are 1-based; Column counts characters.
type Error struct {
	Line, Column int
	Message      string
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// ErrEval wraps every failure of an evaluation: a missing field compared,
// a type mismatch, the cost limit, a result that is not a boolean.
var ErrEval = errors.New("filter evaluation failed")

// Compiler compiles filters against the environment every filter shares.
// It is safe for concurrent use; make one and keep it.
type Compiler struct {
	env *cel.Env
}

// NewCompiler builds the environment: the variables type (string), data
// (a map of JSON values) and occurredAt (a timestamp), and CEL's standard
// functions.
func NewCompiler() (*Compiler, error) {
	env, err := cel.NewEnv(
		cel.Variable("type", cel.StringType),
		cel.Variable("data", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("occurredAt", cel.TimestampType),
		cel.ParserRecursionLimit(maxNesting),
		cel.ParserExpressionSizeLimit(MaxLen),
	)
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	return &Compiler{env: env}, nil
}

// Program is a compiled filter. It is safe for concurrent use.
type Program struct {
	src string
	prg cel.Program
}

// Source is the expression the program was compiled from.
func (p *Program) Source() string { return p.src }

// Compile parses and type-checks expr, which must be a boolean expression
// (or one whose type is only known at run time, such as data.flag). A
// problem is an *Error with its position.
func (c *Compiler) Compile(expr string) (*Program, error) {
	switch {
	case strings.TrimSpace(expr) == "":
		return nil, &Error{Line: 1, Column: 1, Message: "is empty"}
	case len(expr) > MaxLen:
		return nil, &Error{Line: 1, Column: 1, Message: fmt.Sprintf("is longer than %d bytes", MaxLen)}
	case !utf8.ValidString(expr):
		return nil, &Error{Line: 1, Column: 1, Message: "is not UTF-8 text"}
	}
	ast, iss := c.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) == 0 {
			return nil, &Error{Line: 1, Column: 1, Message: iss.Err().Error()}
		}
		e := errs[0]
		line, col := e.Location.Line(), e.Location.Column()+1
		if line < 1 {
			line, col = 1, 1
		}
		col = max(col, 1) // an error of the whole expression has no column
		return nil, &Error{Line: line, Column: col, Message: firstLine(e.Message)}
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, &Error{Line: 1, Column: 1, Message: "must be a condition (a boolean), not " + out.String()}
	}
	prg, err := c.env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &Error{Line: 1, Column: 1, Message: firstLine(err.Error())}
	}
	return &Program{src: expr, prg: prg}, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Input is what filters see of one event. Build it once per event and
// evaluate every filter against it: the data is converted once.
type Input struct {
	typ, at, data ref.Val
}

// NewInput prepares an event for evaluation: data is its decoded JSON
// (nil: an empty object).
func NewInput(typ string, occurredAt time.Time, data map[string]any) *Input {
	if data == nil {
		data = map[string]any{}
	}
	return &Input{
		typ:  types.String(typ),
		at:   types.Timestamp{Time: occurredAt.UTC()},
		data: types.DefaultTypeAdapter.NativeToValue(data),
	}
}

// ResolveName implements interpreter.Activation.
func (in *Input) ResolveName(name string) (any, bool) {
	switch name {
	case "type":
		return in.typ, true
	case "data":
		return in.data, true
	case "occurredAt":
		return in.at, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (in *Input) Parent() interpreter.Activation { return nil }

// Match evaluates the filter; an error (wrapping ErrEval) means the event
// could not be judged, which callers count as no match.
func (p *Program) Match(in *Input) (bool, error) {
	out, _, err := p.prg.Eval(in)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrEval, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%w: the result is %s, not a boolean", ErrEval, out.Type().TypeName())
	}
	return bool(b), nil
}
