package analyzer

import (
	"fmt"
	"strings"
)

// Severity orders findings; the zero value means "no finding".
type Severity int

// Severities, in increasing order.
const (
	Low    Severity = 1
	Medium Severity = 2
	High   Severity = 3
)

// String returns "low", "medium" or "high" ("none" for the zero value).
func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	case 0:
		return "none"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity reads "low", "medium" or "high" (case-insensitive).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low":
		return Low, nil
	case "medium":
		return Medium, nil
	case "high":
		return High, nil
	}
	return 0, fmt.Errorf("parse severity %q: want low, medium or high", s)
}

// Rule describes one class of weakness the analyzer reports.
type Rule struct {
	ID          string
	CWE         []string // e.g. "CWE-78"
	Severity    Severity
	Title       string
	Message     string
	Fix         string // the secure alternative
	Description string // a paragraph of rule text, usable in prompts
}

// Finding is one rule match in one source file. Positions are 1-based; the
// end column is exclusive.
type Finding struct {
	RuleID    string
	CWE       []string
	Severity  Severity
	Message   string
	Line      int
	Column    int
	EndLine   int
	EndColumn int
	Snippet   string
}

// Result is the outcome of analysing one source file.
type Result struct {
	Findings []Finding
	// Parsed is false when the code failed to parse; Findings may then be
	// partial and the code must not be treated as clean.
	Parsed      bool
	ParseErrors []string
}

// Max returns the highest severity among the findings, 0 when there are none.
func (r Result) Max() Severity {
	var m Severity
	for _, f := range r.Findings {
		if f.Severity > m {
			m = f.Severity
		}
	}
	return m
}

// AtLeast returns the findings whose severity is s or higher.
func (r Result) AtLeast(s Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity >= s {
			out = append(out, f)
		}
	}
	return out
}
