package budget

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a finding stops a budget from loading.
type Severity int

const (
	// SeverityError makes the file unusable.
	SeverityError Severity = iota
	// SeverityWarning is almost certainly a mistake but loads.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Error is one finding in a budget file, with the position of the value it is
// about. Line and Column are 1-based; zero when the finding concerns the whole
// file.
type Error struct {
	File     string
	Line     int
	Column   int
	Field    string
	Severity Severity
	Err      error
}

// Error renders file:line:col: field: what is wrong.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every finding of a load, errors and warnings, in file and
// position order.
type Errors []*Error

// Error joins the findings one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each finding to errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// HasErrors reports whether any finding is an error rather than a warning.
func (es Errors) HasErrors() bool {
	for _, e := range es {
		if e.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Warnings returns the warnings only.
func (es Errors) Warnings() Errors {
	var out Errors
	for _, e := range es {
		if e.Severity == SeverityWarning {
			out = append(out, e)
		}
	}
	return out
}

// Err returns the findings that are errors as an error, or nil.
func (es Errors) Err() error {
	var out Errors
	for _, e := range es {
		if e.Severity == SeverityError {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// AsErrors extracts the findings from an error returned by this package.
func AsErrors(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, true
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}, true
	}
	return nil, false
}
