package train

import (
	"fmt"
	"strings"
)

// Problems collects the invalid values of a run config, at most one per
// key, so that a bad value is reported once and all bad values at once.
type Problems struct {
	what  string // "sft config"
	seen  map[string]bool
	lines []string
}

// NewProblems starts an empty collection for the config named what.
func NewProblems(what string) *Problems { return &Problems{what: what, seen: map[string]bool{}} }

// Add records a problem with key (as written in the config file); a
// second problem with the same key is dropped.
func (p *Problems) Add(key, format string, args ...any) {
	if p.seen[key] {
		return
	}
	p.seen[key] = true
	p.lines = append(p.lines, key+": "+fmt.Sprintf(format, args...))
}

// Err is nil without problems; else one problem on one line, several as
// one indented line each.
func (p *Problems) Err() error {
	switch len(p.lines) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("invalid %s: %s", p.what, p.lines[0])
	}
	return fmt.Errorf("invalid %s:\n  %s", p.what, strings.Join(p.lines, "\n  "))
}
