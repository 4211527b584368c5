package analyzer

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// rules.yaml is the rule catalog: metadata, match specs and the taint
// sources/sanitizers. Everything rule-specific lives there; the Go code only
// knows the handful of matcher kinds.
//
//go:embed rules.yaml
var catalogYAML []byte

type catalogFile struct {
	Sources struct {
		UserCalls       []string `yaml:"user_calls"`
		UserAttrs       []string `yaml:"user_attrs"`
		RouteDecorators []string `yaml:"route_decorators"`
	} `yaml:"sources"`
	Sanitizers []string `yaml:"sanitizers"`
	// Guards are checks that validate a name for the whole function when
	// it appears in them inside a condition (if, elif, while, assert).
	Guards []string `yaml:"guards"`
	// PathJoins build a file path from a base and parts.
	PathJoins []string   `yaml:"path_joins"`
	Rules     []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	ID          string      `yaml:"id"`
	CWE         []string    `yaml:"cwe"`
	Severity    string      `yaml:"severity"`
	Title       string      `yaml:"title"`
	Message     string      `yaml:"message"`
	Fix         string      `yaml:"fix"`
	Description string      `yaml:"description"`
	Match       []matchSpec `yaml:"match"`
}

// matchSpec is one way a rule can fire. Exactly one of Call, Method, Attr,
// Assign, String, Build, Query, Resource or Acquire is set.
type matchSpec struct {
	// Call: resolved callee names ("subprocess.*", "os.system", "eval").
	Call []string `yaml:"call"`
	// Method: method names on any receiver, e.g. execute; Receiver
	// optionally restricts the receiver's source text (regexp).
	Method   []string `yaml:"method"`
	Receiver string   `yaml:"receiver"`
	// Attr: resolved names referenced anywhere (ssl.CERT_NONE).
	Attr []string `yaml:"attr"`
	// Assign: regexp on the (lower-cased) target name of assignments,
	// keyword arguments and string-keyed dict entries; Value constrains the
	// assigned expression.
	Assign  string   `yaml:"assign"`
	Exclude string   `yaml:"exclude"` // regexp of target names to skip
	Value   *argSpec `yaml:"value"`
	// String: regexp on the contents of constant string literals.
	String string `yaml:"string"`
	// Build: regexp on the constant text of a string built at run time
	// (f-string, +, %, .format()); Value then tests the non-constant parts.
	Build string `yaml:"build"`
	// Query: a tree-sitter query; the node captured as @match is reported.
	Query string `yaml:"query"`
	// Resource: constructors whose result must be released (Release
	// methods on the bound name, or ReleaseCalls taking it).
	Resource     []string `yaml:"resource"`
	Release      []string `yaml:"release"`
	ReleaseCalls []string `yaml:"release_calls"`
	// Acquire: methods that take a lock released by Release in a finally.
	Acquire []string `yaml:"acquire"`

	// Hint: lower-case substrings, one of which must occur in the matched
	// name or string before the regexp runs (a cheap prefilter).
	Hint []string `yaml:"hint"`
	// Args: conditions on call arguments; all must hold.
	Args []argSpec `yaml:"args"`
	// Target: regexp on the source text of an assignment's target, for
	// assign matches (e.g. headers\[ for response.headers["X"] = v).
	Target string `yaml:"target"`
	// Context: regexp that a nearby name (assignment target, keyword,
	// enclosing function) must match, for "used as a secret" checks.
	Context string `yaml:"context"`
	// Within: the call must sit inside the arguments of a call to one of
	// these functions or methods (last name segment, e.g. join), in the
	// same expression.
	Within []string `yaml:"within"`
	// Severity overrides the rule's severity for this way of matching.
	Severity string `yaml:"severity"`
}

// argSpec selects an argument by position and/or keyword and tests it.
type argSpec struct {
	Pos *int   `yaml:"pos"`
	Kw  string `yaml:"kw"`
	Any bool   `yaml:"any"` // any argument (positional or keyword)
	// Recv tests the receiver of a method call (x in x.read_text()).
	Recv  bool   `yaml:"recv"`
	Is    string `yaml:"is"` // see argTests
	Regex string `yaml:"regex"`
	Lt    *int64 `yaml:"lt"`
	Mask  *int64 `yaml:"mask"`
	Not   bool   `yaml:"not"`
	// Clean: extra sanitizers for this test's taint (e.g. repr for log
	// lines), on top of the catalog's.
	Clean []string `yaml:"clean"`
}

var argTests = map[string]bool{
	"": true, "present": true, "absent": true, "literal": true, "nonliteral": true,
	"dynamic": true, "tainted": true, "user": true, "true": true, "false": true,
	"constant": true, "secret": true, "token": true, "int": true, "string": true,
	"alphabet": true, "unsanitized": true, "pathjoin": true, "urlhost": true, "built": true,
}

type rule struct {
	Rule
	matchers []*matcher
}

type matcher struct {
	rule     *rule
	kind     string // call, method, attr, assign, string, query, resource, acquire
	names    []glob
	receiver *regexp.Regexp
	re       *regexp.Regexp
	exclude  *regexp.Regexp
	target   *regexp.Regexp
	hint     []string
	args     []compiledArg
	value    *compiledArg
	context  *regexp.Regexp
	severity Severity
	release  []string
	relCalls []glob
	query    string
	within   []string
}

type compiledArg struct {
	clean []glob
	recv  bool
	pos   int // -1: none
	kw    string
	any   bool
	is    string
	re    *regexp.Regexp
	lt    *int64
	mask  *int64
	not   bool
}

// glob is a dotted name pattern: "*" matches one segment, "**" any number.
type glob []string

func parseGlob(s string) glob { return strings.Split(s, ".") }

func (g glob) match(name string) bool { return globMatch(g, strings.Split(name, ".")) }

func globMatch(g glob, segs []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if globMatch(g[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 || (g[0] != "*" && g[0] != segs[0]) {
			return false
		}
		g, segs = g[1:], segs[1:]
	}
	return len(segs) == 0
}

// last returns the final literal segment, or "" when it is a wildcard.
func (g glob) last() string {
	l := g[len(g)-1]
	if l == "*" || l == "**" {
		return ""
	}
	return l
}

type catalog struct {
	rules      []*rule
	userCalls  []glob
	userAttrs  []glob
	routeDecos []glob
	sanitizers []glob
	guards     []glob
	pathJoins  []glob

	// Indexes from the last segment of a name to the matchers that may
	// match it; wildcard-ended patterns go to the *Any lists.
	callByLast   map[string][]*matcher
	callAny      []*matcher
	methodByName map[string][]*matcher
	attrByLast   map[string][]*matcher
	assigns      []*matcher
	strs         []*matcher
	builds       []*matcher
	queries      []*matcher
}

func loadCatalog(data []byte) (*catalog, error) {
	var cf catalogFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("rules.yaml: %w", err)
	}
	c := &catalog{
		callByLast:   map[string][]*matcher{},
		methodByName: map[string][]*matcher{},
		attrByLast:   map[string][]*matcher{},
	}
	for _, s := range cf.Sources.UserCalls {
		c.userCalls = append(c.userCalls, parseGlob(s))
	}
	for _, s := range cf.Sources.UserAttrs {
		c.userAttrs = append(c.userAttrs, parseGlob(s))
	}
	for _, s := range cf.Sources.RouteDecorators {
		c.routeDecos = append(c.routeDecos, parseGlob(s))
	}
	for _, s := range cf.Sanitizers {
		c.sanitizers = append(c.sanitizers, parseGlob(s))
	}
	for _, s := range cf.Guards {
		c.guards = append(c.guards, parseGlob(s))
	}
	for _, s := range cf.PathJoins {
		c.pathJoins = append(c.pathJoins, parseGlob(s))
	}
	seen := map[string]bool{}
	for i := range cf.Rules {
		rs := &cf.Rules[i]
		r, err := compileRule(rs)
		if err != nil {
			return nil, fmt.Errorf("rules.yaml: rule %d (%q): %w", i, rs.ID, err)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("rules.yaml: rule %d: duplicate id %q", i, r.ID)
		}
		seen[r.ID] = true
		c.rules = append(c.rules, r)
		for _, m := range r.matchers {
			c.index(m)
		}
	}
	return c, nil
}

func (c *catalog) index(m *matcher) {
	switch m.kind {
	case "call", "resource":
		for _, g := range m.names {
			if l := g.last(); l != "" {
				c.callByLast[l] = append(c.callByLast[l], m)
			} else {
				c.callAny = append(c.callAny, m)
			}
		}
	case "method", "acquire":
		for _, g := range m.names {
			c.methodByName[g[0]] = append(c.methodByName[g[0]], m)
		}
	case "attr":
		for _, g := range m.names {
			c.attrByLast[g.last()] = append(c.attrByLast[g.last()], m)
		}
	case "assign":
		c.assigns = append(c.assigns, m)
	case "string":
		c.strs = append(c.strs, m)
	case "build":
		c.builds = append(c.builds, m)
	case "query":
		c.queries = append(c.queries, m)
	}
}

func compileRule(rs *ruleSpec) (*rule, error) {
	if rs.ID == "" || rs.Title == "" || rs.Message == "" || rs.Fix == "" || rs.Description == "" {
		return nil, fmt.Errorf("id, title, message, fix and description are all required")
	}
	if len(rs.CWE) == 0 {
		return nil, fmt.Errorf("at least one CWE id is required")
	}
	for _, cwe := range rs.CWE {
		if _, err := strconv.Atoi(strings.TrimPrefix(cwe, "CWE-")); err != nil || !strings.HasPrefix(cwe, "CWE-") {
			return nil, fmt.Errorf("CWE id %q: want CWE-<number>", cwe)
		}
	}
	sev, err := ParseSeverity(rs.Severity)
	if err != nil {
		return nil, err
	}
	r := &rule{Rule: Rule{
		ID: rs.ID, CWE: rs.CWE, Severity: sev, Title: rs.Title,
		Message: strings.TrimSpace(rs.Message), Fix: strings.TrimSpace(rs.Fix),
		Description: strings.TrimSpace(rs.Description),
	}}
	if len(rs.Match) == 0 {
		return nil, fmt.Errorf("no match entries")
	}
	for j := range rs.Match {
		m, err := compileMatch(r, &rs.Match[j])
		if err != nil {
			return nil, fmt.Errorf("match %d: %w", j, err)
		}
		r.matchers = append(r.matchers, m)
	}
	return r, nil
}

func compileMatch(r *rule, ms *matchSpec) (*matcher, error) {
	m := &matcher{rule: r, severity: r.Severity, hint: ms.Hint}
	kinds := 0
	set := func(k string, ok bool) {
		if ok {
			m.kind = k
			kinds++
		}
	}
	set("call", len(ms.Call) > 0)
	set("method", len(ms.Method) > 0)
	set("attr", len(ms.Attr) > 0)
	set("assign", ms.Assign != "")
	set("string", ms.String != "")
	set("build", ms.Build != "")
	set("query", ms.Query != "")
	set("resource", len(ms.Resource) > 0)
	set("acquire", len(ms.Acquire) > 0)
	if kinds != 1 {
		return nil, fmt.Errorf("want exactly one of call, method, attr, assign, string, build, query, resource, acquire; got %d", kinds)
	}
	var err error
	for _, n := range append(append(append(append([]string{}, ms.Call...), ms.Method...), ms.Attr...), append(ms.Resource, ms.Acquire...)...) {
		m.names = append(m.names, parseGlob(n))
	}
	if (m.kind == "method" || m.kind == "acquire") && len(m.names) > 0 {
		for _, g := range m.names {
			if len(g) != 1 || g[0] == "*" {
				return nil, fmt.Errorf("method name %q: want a plain name", strings.Join(g, "."))
			}
		}
	}
	if m.kind == "attr" {
		for _, g := range m.names {
			if g.last() == "" {
				return nil, fmt.Errorf("attr %q must end in a literal name", strings.Join(g, "."))
			}
		}
	}
	if ms.Receiver != "" {
		if m.receiver, err = regexp.Compile(ms.Receiver); err != nil {
			return nil, fmt.Errorf("receiver: %w", err)
		}
	}
	pat := ms.Assign
	if ms.String != "" {
		pat = ms.String
	}
	if ms.Build != "" {
		pat = ms.Build
		if ms.Value == nil {
			return nil, fmt.Errorf("build needs a value test for the non-constant parts")
		}
	}
	if pat != "" {
		if m.re, err = regexp.Compile(pat); err != nil {
			return nil, fmt.Errorf("regexp %q: %w", pat, err)
		}
	}
	if ms.Exclude != "" {
		if m.exclude, err = regexp.Compile(ms.Exclude); err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
	}
	if ms.Target != "" {
		if m.kind != "assign" {
			return nil, fmt.Errorf("target applies to assign matches only")
		}
		if m.target, err = regexp.Compile(ms.Target); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
	}
	if ms.Context != "" {
		if m.context, err = regexp.Compile(ms.Context); err != nil {
			return nil, fmt.Errorf("context: %w", err)
		}
	}
	if ms.Severity != "" {
		if m.severity, err = ParseSeverity(ms.Severity); err != nil {
			return nil, err
		}
	}
	for k, a := range ms.Args {
		ca, err := compileArg(&a)
		if err != nil {
			return nil, fmt.Errorf("args[%d]: %w", k, err)
		}
		m.args = append(m.args, ca)
	}
	if ms.Value != nil {
		ca, err := compileArg(ms.Value)
		if err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		m.value = &ca
	}
	m.query = ms.Query
	if len(ms.Within) > 0 && m.kind != "call" && m.kind != "method" {
		return nil, fmt.Errorf("within applies to call and method matches only")
	}
	m.within = ms.Within
	if m.kind == "resource" || m.kind == "acquire" {
		if len(ms.Release) == 0 {
			return nil, fmt.Errorf("%s needs release methods", m.kind)
		}
	}
	m.release = ms.Release
	for _, n := range ms.ReleaseCalls {
		m.relCalls = append(m.relCalls, parseGlob(n))
	}
	return m, nil
}

func compileArg(a *argSpec) (compiledArg, error) {
	ca := compiledArg{pos: -1, kw: a.Kw, any: a.Any, recv: a.Recv, is: a.Is, lt: a.Lt, mask: a.Mask, not: a.Not}
	for _, s := range a.Clean {
		ca.clean = append(ca.clean, parseGlob(s))
	}
	if a.Pos != nil {
		ca.pos = *a.Pos
	}
	if !argTests[a.Is] {
		return ca, fmt.Errorf("unknown test is: %q", a.Is)
	}
	if a.Regex != "" {
		re, err := regexp.Compile(a.Regex)
		if err != nil {
			return ca, fmt.Errorf("regex: %w", err)
		}
		ca.re = re
	}
	return ca, nil
}
