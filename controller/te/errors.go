package te

import (
	"errors"
	"fmt"
)

// FieldError reports bad input: which field, which value, and why.
type FieldError struct {
	Field string // JSON path, e.g. "links[3].bandwidth_bps"
	Value any
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s (got %v)", e.Field, e.Msg, e.Value)
}

func fieldErr(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// ErrNoValidTree is wrapped by RejectError when no ≈-valid tree reaches
// every receiver.
var ErrNoValidTree = errors.New("no valid tree")

// ErrUnknownTunnel is returned for operations on a tunnel id the engine
// does not hold.
var ErrUnknownTunnel = errors.New("unknown tunnel")

// RejectError explains why a request cannot be admitted. Bottleneck names
// the link ("s1->s2") that blocked it, when one can be named.
type RejectError struct {
	Reason     string
	Bottleneck string
	Err        error
}

func (e *RejectError) Error() string {
	if e.Bottleneck != "" {
		return fmt.Sprintf("%s: %s (bottleneck link %s)", e.Err, e.Reason, e.Bottleneck)
	}
	return fmt.Sprintf("%s: %s", e.Err, e.Reason)
}

func (e *RejectError) Unwrap() error { return e.Err }

// ErrInfeasible is wrapped when admitting a tree would leave some tunnel
// without a finite bound (period above the limit, or a sub-lane overloaded).
var ErrInfeasible = errors.New("no feasible adjustment")
