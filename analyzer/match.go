package analyzer

import (
	"strconv"
	"strings"
)

// hit is a provisional finding: the rule and the node it is reported at.
type hit struct {
	rule *rule
	node int32
	sev  Severity
}

// collector keeps the most severe hit per (rule, node).
type collector struct {
	hits []hit
}

func (c *collector) add(m *matcher, n int32) {
	for k := range c.hits {
		if c.hits[k].rule == m.rule && c.hits[k].node == n {
			if m.severity > c.hits[k].sev {
				c.hits[k].sev = m.severity
			}
			return
		}
	}
	c.hits = append(c.hits, hit{rule: m.rule, node: n, sev: m.severity})
}

// matchAll runs every non-query matcher over the flat tree.
func (f *file) matchAll(c *catalog, out *collector) {
	var seen []*matcher
	for i := int32(0); i < int32(len(f.nodes)); i++ {
		switch f.nodes[i].kind {
		case "call", "exec_statement":
			seen = f.matchCall(c, i, out, seen[:0])
			if len(c.builds) > 0 {
				f.matchBuild(c, i, out)
			}
		case "attribute":
			f.matchAttr(c, i, out)
		case "identifier":
			if q, ok := f.imports[f.text(i)]; ok && strings.Contains(q, ".") && !f.inImport(i) {
				f.matchAttr(c, i, out)
			}
		case "assignment", "keyword_argument", "pair", "default_parameter", "typed_default_parameter":
			if len(c.assigns) > 0 {
				f.matchAssign(c, i, out)
			}
		case "string":
			if len(c.strs) > 0 {
				f.matchString(c, i, out)
			}
			if len(c.builds) > 0 {
				f.matchBuild(c, i, out)
			}
		case "binary_operator":
			if len(c.builds) > 0 {
				f.matchBuild(c, i, out)
			}
		}
	}
}

func (f *file) inImport(n int32) bool {
	switch f.kind(f.parent(n)) {
	case "dotted_name", "aliased_import", "import_statement", "import_from_statement":
		return true
	}
	return false
}

func (f *file) matchCall(c *catalog, call int32, out *collector, seen []*matcher) []*matcher {
	fn := f.child(call, "function")
	cands := f.candidates(fn)
	if f.kind(call) == "exec_statement" {
		cands = []string{"exec"} // Python 2: exec code in namespace
	}
	try := func(m *matcher) {
		for _, s := range seen {
			if s == m {
				return
			}
		}
		seen = append(seen, m)
		if !f.argsHold(c, m, call) || !f.contextHolds(m, call) || !f.withinHolds(m, call) {
			return
		}
		switch m.kind {
		case "resource":
			if f.leaks(c, m, call) {
				out.add(m, call)
			}
		case "acquire":
			if f.lockLeaks(m, call) {
				out.add(m, call)
			}
		default:
			out.add(m, call)
		}
	}
	for _, q := range cands {
		segs := strings.Split(q, ".")
		for _, m := range c.callByLast[segs[len(segs)-1]] {
			for _, g := range m.names {
				if globMatch(g, segs) {
					try(m)
					break
				}
			}
		}
		for _, m := range c.callAny {
			for _, g := range m.names {
				if globMatch(g, segs) {
					try(m)
					break
				}
			}
		}
	}
	if fu := f.unparen(fn); f.kind(fu) == "attribute" {
		name := f.text(f.child(fu, "attribute"))
		for _, m := range c.methodByName[name] {
			if m.receiver == nil || m.receiver.MatchString(f.text(f.child(fu, "object"))) {
				try(m)
			}
		}
	}
	return seen
}

func (f *file) matchAttr(c *catalog, n int32, out *collector) {
	var last string
	if f.kind(n) == "attribute" {
		last = f.text(f.child(n, "attribute"))
	} else {
		q := f.imports[f.text(n)]
		last = q[strings.LastIndexByte(q, '.')+1:]
	}
	ms := c.attrByLast[last]
	if len(ms) == 0 {
		return
	}
	q, _ := f.qualName(n)
	segs := strings.Split(q, ".")
	for _, m := range ms {
		for _, g := range m.names {
			if globMatch(g, segs) {
				out.add(m, n)
				break
			}
		}
	}
}

// assignTarget returns the name being bound and the value for the node
// kinds the assign matcher understands.
func (f *file) assignTarget(n int32) (string, int32) {
	var t, v int32
	switch f.kind(n) {
	case "assignment":
		t, v = f.child(n, "left"), f.child(n, "right")
	case "keyword_argument", "default_parameter", "typed_default_parameter":
		t, v = f.child(n, "name"), f.child(n, "value")
	case "pair":
		k := f.child(n, "key")
		s, ok := f.stringValue(k)
		if !ok {
			return "", noNode
		}
		return s, f.child(n, "value")
	}
	switch f.kind(t) {
	case "identifier":
		return f.text(t), v
	case "attribute":
		return f.text(f.child(t, "attribute")), v
	case "subscript":
		if s, ok := f.stringValue(f.child(t, "subscript")); ok {
			return s, v
		}
	}
	return "", noNode
}

func (f *file) matchAssign(c *catalog, n int32, out *collector) {
	name, val := f.assignTarget(n)
	if name == "" || val == noNode {
		return
	}
	lname := strings.ToLower(name)
	for _, m := range c.assigns {
		if !hasHint(m.hint, lname) || !m.re.MatchString(lname) || (m.exclude != nil && m.exclude.MatchString(lname)) {
			continue
		}
		if m.value != nil && f.argTest(c, m.value, val) == m.value.not {
			continue
		}
		if m.target != nil && !m.target.MatchString(f.text(f.child(n, "left"))) {
			continue
		}
		out.add(m, n)
	}
}

func (f *file) matchString(c *catalog, n int32, out *collector) {
	s, ok := f.stringValue(n)
	if !ok || s == "" {
		return
	}
	var lower string
	for _, m := range c.strs {
		if len(m.hint) > 0 {
			if lower == "" {
				lower = strings.ToLower(s)
			}
			if !hasHint(m.hint, lower) {
				continue
			}
		}
		if m.re.MatchString(s) {
			out.add(m, n)
		}
	}
}

func hasHint(hints []string, s string) bool {
	if len(hints) == 0 {
		return true
	}
	for _, h := range hints {
		if strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// callArgs splits a call's arguments into positional ones and keywords.
func (f *file) callArgs(call int32) (pos []int32, kw map[string]int32) {
	if f.kind(call) == "exec_statement" {
		return []int32{f.child(call, "code")}, nil
	}
	for _, a := range f.namedChildren(f.child(call, "arguments")) {
		switch f.kind(a) {
		case "keyword_argument":
			if kw == nil {
				kw = map[string]int32{}
			}
			kw[f.text(f.child(a, "name"))] = f.child(a, "value")
		case "list_splat", "dictionary_splat":
		default:
			pos = append(pos, a)
		}
	}
	return pos, kw
}

func (f *file) argsHold(c *catalog, m *matcher, call int32) bool {
	if len(m.args) == 0 {
		return true
	}
	pos, kw := f.callArgs(call)
	for k := range m.args {
		a := &m.args[k]
		var ok bool
		if a.recv {
			fu := f.unparen(f.child(call, "function"))
			n := int32(noNode)
			if f.kind(fu) == "attribute" {
				n = f.child(fu, "object")
			}
			ok = f.argTest(c, a, n)
		} else if a.any {
			for _, p := range pos {
				ok = ok || f.argTest(c, a, p)
			}
			for _, v := range kw {
				ok = ok || f.argTest(c, a, v)
			}
		} else {
			n := int32(noNode)
			if a.pos >= 0 && a.pos < len(pos) {
				n = pos[a.pos]
			} else if a.kw != "" {
				if v, found := kw[a.kw]; found {
					n = v
				}
			}
			ok = f.argTest(c, a, n)
		}
		if ok == a.not {
			return false
		}
	}
	return true
}

// argTest applies one argument condition (ignoring Not) to node n, which
// is noNode when the argument is absent.
func (f *file) argTest(c *catalog, a *compiledArg, n int32) bool {
	if a.is == "absent" {
		return n == noNode
	}
	if n == noNode {
		return false
	}
	switch a.is {
	case "literal", "constant":
		if !f.isConst(c, n, 0) {
			return false
		}
	case "nonliteral":
		if f.isConst(c, n, 0) {
			return false
		}
	case "dynamic":
		if !f.isDynamicString(c, n, 0) && f.taint(c, n, a.clean) == 0 {
			return false
		}
	case "tainted":
		if f.taint(c, n, a.clean) == 0 {
			return false
		}
	case "user":
		if f.taint(c, n, a.clean)&taintUser == 0 {
			return false
		}
	case "pathjoin":
		if !f.isPathJoin(c, n, 0) || f.taint(c, n, a.clean) == 0 {
			return false
		}
	case "built":
		if !f.isDynamicString(c, n, 0) || f.taint(c, n, a.clean) == 0 {
			return false
		}
	case "urlhost":
		if f.taint(c, n, a.clean) == 0 || f.hasFixedHost(c, n, 0) {
			return false
		}
	case "true":
		if t := f.text(f.unparen(n)); t != "True" && t != "1" {
			return false
		}
	case "false":
		if t := f.text(f.unparen(n)); t != "False" && t != "0" {
			return false
		}
	case "string":
		if _, ok := f.stringValue(n); !ok {
			return false
		}
	case "int":
		if f.kind(f.unparen(n)) != "integer" {
			return false
		}
	case "alphabet":
		if !f.isAlphabet(c, n, 0) {
			return false
		}
	case "unsanitized":
		if f.isSafe(c, n, 0) {
			return false
		}
	case "secret", "token":
		s, ok := f.stringValue(n)
		if !ok || !secretLike(s, a.is == "token") {
			return false
		}
	}
	if a.re != nil {
		s, ok := f.stringValue(n)
		if !ok {
			s = f.text(n)
		}
		if !a.re.MatchString(s) {
			return false
		}
	}
	if a.lt != nil || a.mask != nil {
		v, ok := f.intValue(n)
		if !ok {
			return false
		}
		if a.lt != nil && v >= *a.lt {
			return false
		}
		if a.mask != nil && v&*a.mask == 0 {
			return false
		}
	}
	return true
}

func (f *file) intValue(n int32) (int64, bool) {
	n = f.unparen(n)
	if f.kind(n) != "integer" {
		return 0, false
	}
	t := strings.ReplaceAll(strings.ToLower(f.text(n)), "_", "")
	if len(t) > 1 && t[0] == '0' && t[1] >= '0' && t[1] <= '9' {
		t = "0o" + t[1:] // Python 2 octal, as in os.chmod(p, 0777)
	}
	v, err := strconv.ParseInt(t, 0, 64)
	return v, err == nil
}

// secretLike reports whether a literal looks like a real credential rather
// than an empty value or a placeholder for one.
func secretLike(s string, strict bool) bool {
	t := strings.TrimSpace(s)
	if t == "" {
		return false
	}
	l := strings.ToLower(t)
	for _, p := range []string{"<", "${", "{{", "%(", "xxx", "***", "...", "your", "todo", "fixme", "placeholder", "changeit", "replace", "insert", "enter ", "none", "null", "example"} {
		if strings.Contains(l, p) {
			return false
		}
	}
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
		return false
	}
	if strict && (len(t) < 8 || strings.ContainsAny(t, " \t\n")) {
		return false
	}
	return true
}

// contextHolds checks a matcher's Context regexp against the names the
// call's value flows into: assignment targets, keyword names, dict keys,
// and the enclosing function's name.
func (f *file) contextHolds(m *matcher, n int32) bool {
	if m.context == nil {
		return true
	}
	for p := f.parent(n); p != noNode; p = f.parent(p) {
		switch f.kind(p) {
		case "assignment", "augmented_assignment":
			if m.context.MatchString(strings.ToLower(f.text(f.child(p, "left")))) {
				return true
			}
		case "keyword_argument":
			if m.context.MatchString(strings.ToLower(f.text(f.child(p, "name")))) {
				return true
			}
		case "pair":
			if m.context.MatchString(strings.ToLower(f.text(f.child(p, "key")))) {
				return true
			}
		case "function_definition":
			return m.context.MatchString(strings.ToLower(f.text(f.child(p, "name"))))
		case "class_definition":
			return false
		}
	}
	return false
}

// withinHolds checks a matcher's Within names: a call enclosing n in the
// same statement calls one of them.
func (f *file) withinHolds(m *matcher, n int32) bool {
	if len(m.within) == 0 {
		return true
	}
	for p := f.parent(n); p != noNode; p = f.parent(p) {
		switch f.kind(p) {
		case "call":
			fn := f.unparen(f.child(p, "function"))
			name := f.text(fn)
			if f.kind(fn) == "attribute" {
				name = f.text(f.child(fn, "attribute"))
			}
			for _, w := range m.within {
				if w == name {
					return true
				}
			}
		case "block", "module", "lambda":
			return false
		}
	}
	return false
}
