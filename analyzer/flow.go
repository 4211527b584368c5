package analyzer

import (
	"regexp"
	"strings"
)

// collectGuards marks as validated the names checked by condition cond:
// the left side of an `in` / `not in` test (an allow-list), the side of an
// ==/!= test compared with a constant, and the receiver and arguments of a
// guard call (startswith, fullmatch, commonpath, ...). Validation is
// flow-insensitive: a check anywhere in the function clears the name
// everywhere in it, which misses checks made after the use but keeps
// validated code clean.
func (f *file) collectGuards(c *catalog, ff *funcFacts, cond int32) {
	if cond == noNode {
		return
	}
	for i := cond; i < f.nodes[cond].subEnd; i++ {
		switch f.nodes[i].kind {
		case "comparison_operator":
			ops, operands := f.comparison(i)
			if len(operands) != 2 || len(ops) != 1 {
				continue
			}
			switch ops[0] {
			case "in", "not in":
				if !f.isConst(c, operands[0], 0) {
					f.validateDerived(ff, operands[0])
				}
			case "==", "!=":
				// Only a bare name compared with a constant is pinned down
				// (len(x) == 0 says nothing about x's text).
				l, r := f.unparen(operands[0]), f.unparen(operands[1])
				switch {
				case f.kind(l) == "identifier" && f.isConst(c, r, 0):
					f.validate(ff, l)
				case f.kind(r) == "identifier" && f.isConst(c, l, 0):
					f.validate(ff, r)
				}
			}
		case "call":
			fn := f.child(i, "function")
			for _, q := range f.candidates(fn) {
				if anyGlob(c.guards, q) {
					if fu := f.unparen(fn); f.kind(fu) == "attribute" {
						f.validateDerived(ff, f.child(fu, "object"))
					}
					f.validateDerived(ff, f.child(i, "arguments"))
					break
				}
			}
		}
	}
}

// comparison splits a comparison into its operator tokens and operands.
func (f *file) comparison(n int32) (ops []string, operands []int32) {
	for k := f.nodes[n].firstChild; k != noNode; k = f.nodes[k].nextSibling {
		switch {
		case f.nodes[k].named && f.nodes[k].kind != "comment":
			operands = append(operands, k)
		case !f.nodes[k].named:
			if t := f.text(k); t == "not" || t == "is" {
				if len(ops) > 0 && len(ops) == len(operands) {
					ops[len(ops)-1] += " " + t // "not in", "is not"
					continue
				}
				ops = append(ops, t)
			} else if t == "in" && len(ops) > 0 && len(ops) == len(operands) {
				ops[len(ops)-1] += " in"
			} else {
				ops = append(ops, t)
			}
		}
	}
	return ops, operands
}

// validate marks every variable name read in n as validated.
func (f *file) validate(ff *funcFacts, n int32) {
	if n == noNode {
		return
	}
	for i := n; i < f.nodes[n].subEnd; i++ {
		if f.nodes[i].kind != "identifier" {
			continue
		}
		switch f.nodes[i].field {
		case "attribute", "name":
			continue // x.<attr>, keyword names
		}
		ff.validated[f.text(i)] = true
	}
}

// validateDerived validates the names read in n and, for a name computed
// from others by a call or attribute (host = urlparse(url).hostname,
// full = os.path.realpath(os.path.join(base, name))), those names too:
// checking the derived value is how such inputs are checked. Names bound
// by plain copies or loops (for c in s) do not pass validation on.
func (f *file) validateDerived(ff *funcFacts, n int32) {
	if n == noNode {
		return
	}
	f.validate(ff, n)
	for i := n; i < f.nodes[n].subEnd; i++ {
		if f.nodes[i].kind != "identifier" || f.nodes[i].field == "attribute" {
			continue
		}
		for _, v := range ff.assigns[f.text(i)] {
			switch f.kind(f.unparen(v)) {
			case "call", "attribute":
				f.validate(ff, v)
			}
		}
	}
}

// reprConversion reports whether interpolation i is written {x!r} and repr
// counts as a sanitizer.
func (f *file) reprConversion(c *catalog, i int32, extra []glob) bool {
	conv := f.child(i, "type_conversion")
	if conv == noNode || f.text(conv) != "!r" {
		return false
	}
	return anyGlob(c.sanitizers, "repr") || anyGlob(extra, "repr")
}

// alphabetNames are the string module's character sets, recognised also
// when their import is not part of the fragment.
var alphabetNames = map[string]bool{
	"ascii_letters": true, "ascii_lowercase": true, "ascii_uppercase": true, "digits": true,
	"hexdigits": true, "octdigits": true, "letters": true, "lowercase": true, "uppercase": true,
	"punctuation": true, "printable": true,
}

// isAlphabet reports whether n is a character set: a string constant, a
// string-module alphabet, a sum or repetition of those, or a name (or a
// parameter default) bound only to one.
func (f *file) isAlphabet(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return false
	}
	switch f.kind(n) {
	case "string", "concatenated_string":
		_, ok := f.stringValue(n)
		return ok
	case "binary_operator":
		l, r := f.child(n, "left"), f.child(n, "right")
		switch f.text(f.child(n, "operator")) {
		case "+":
			return f.isAlphabet(c, l, depth+1) && f.isAlphabet(c, r, depth+1)
		case "*":
			return f.isAlphabet(c, l, depth+1) || f.isAlphabet(c, r, depth+1)
		}
		return false
	case "attribute":
		q, _ := f.qualName(n)
		return strings.HasPrefix(q, "string.") && alphabetNames[q[len("string."):]]
	case "identifier":
		name := f.text(n)
		if q, ok := f.imports[name]; ok {
			return strings.HasPrefix(q, "string.") && alphabetNames[q[len("string."):]]
		}
		for ff := f.facts(c, n); ff != nil; ff = ff.outer {
			if _, ok := ff.params[name]; ok {
				d := f.paramDefault(ff.scope, name)
				return d != noNode && f.isAlphabet(c, d, depth+1)
			}
			if vals, ok := ff.assigns[name]; ok {
				for _, v := range vals {
					if v == n || !f.isAlphabet(c, v, depth+1) {
						return false
					}
				}
				return true
			}
		}
		return alphabetNames[name]
	}
	return false
}

// paramDefault returns the default value of parameter name of function fn.
func (f *file) paramDefault(fn int32, name string) int32 {
	for _, p := range f.namedChildren(f.child(fn, "parameters")) {
		switch f.kind(p) {
		case "default_parameter", "typed_default_parameter":
			if f.text(f.child(p, "name")) == name {
				return f.child(p, "value")
			}
		}
	}
	return noNode
}

// isSafe reports whether n can only hold text the program chose: constants,
// sanitizer results (shlex.quote, int, ...), validated names, and strings
// built from those. Unknown calls, attributes and parameters are not safe.
func (f *file) isSafe(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return false
	}
	if f.isConst(c, n, 0) {
		return true
	}
	switch f.kind(n) {
	case "string":
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			if f.nodes[i].kind == "interpolation" && !f.isSafe(c, f.child(i, "expression"), depth+1) {
				return false
			}
		}
		return true
	case "concatenated_string", "list", "tuple":
		for _, k := range f.namedChildren(n) {
			if !f.isSafe(c, k, depth+1) {
				return false
			}
		}
		return true
	case "binary_operator":
		return f.isSafe(c, f.child(n, "left"), depth+1) && f.isSafe(c, f.child(n, "right"), depth+1)
	case "conditional_expression":
		kids := f.namedChildren(n)
		return len(kids) == 3 && f.isSafe(c, kids[0], depth+1) && f.isSafe(c, kids[2], depth+1)
	case "call":
		fn := f.child(n, "function")
		for _, q := range f.candidates(fn) {
			if anyGlob(c.sanitizers, q) {
				return true
			}
		}
		// "...".format(safe) and "sep".join(safe) keep safety.
		fu := f.unparen(fn)
		if f.kind(fu) != "attribute" {
			return false
		}
		switch f.text(f.child(fu, "attribute")) {
		case "format", "join":
		default:
			return false
		}
		if !f.isSafe(c, f.child(fu, "object"), depth+1) {
			return false
		}
		for _, a := range f.namedChildren(f.child(n, "arguments")) {
			if f.kind(a) == "keyword_argument" {
				a = f.child(a, "value")
			}
			if !f.isSafe(c, a, depth+1) {
				return false
			}
		}
		return true
	case "identifier":
		name := f.text(n)
		for ff := f.facts(c, n); ff != nil; ff = ff.outer {
			_, isParam := ff.params[name]
			vals, isLocal := ff.assigns[name]
			if (isParam || isLocal) && ff.validated[name] {
				return true
			}
			if isParam {
				return false
			}
			if isLocal {
				for _, v := range vals {
					if v == n || !f.isSafe(c, v, depth+1) {
						return false
					}
				}
				return true
			}
		}
	}
	return false
}

// isPathJoin reports whether n is a file path assembled from parts: a
// path-join call, pathlib's / or +, or string formatting, directly or
// through local names or wrapping calls (normpath, abspath, Path(...)).
func (f *file) isPathJoin(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return false
	}
	switch f.kind(n) {
	case "binary_operator":
		switch f.text(f.child(n, "operator")) {
		case "/", "+", "%":
			return true
		}
	case "string", "concatenated_string":
		return !f.isConst(c, n, 0)
	case "call":
		fn := f.child(n, "function")
		// One argument is a conversion (Path(p)), not a join.
		if len(f.namedChildren(f.child(n, "arguments"))) >= 2 {
			for _, q := range f.candidates(fn) {
				if anyGlob(c.pathJoins, q) {
					return true
				}
			}
		}
		if f.isDynamicString(c, n, depth+1) {
			return true
		}
		if fu := f.unparen(fn); f.kind(fu) == "attribute" && f.isPathJoin(c, f.child(fu, "object"), depth+1) {
			return true
		}
		for _, a := range f.namedChildren(f.child(n, "arguments")) {
			if f.isPathJoin(c, a, depth+1) {
				return true
			}
		}
	case "identifier":
		name := f.text(n)
		for ff := f.facts(c, n); ff != nil; ff = ff.outer {
			if _, ok := ff.params[name]; ok {
				return false
			}
			if vals, ok := ff.assigns[name]; ok {
				for _, v := range vals {
					if v != n && f.isPathJoin(c, v, depth+1) {
						return true
					}
				}
				return false
			}
		}
	}
	return false
}

// fixedHostRe matches a URL prefix whose scheme and host are complete.
var fixedHostRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@{}%]+[/?#]`)

// hasFixedHost reports whether URL expression n starts with constant text
// naming its scheme and host, so input can only choose the path or query.
func (f *file) hasFixedHost(c *catalog, n int32, depth int) bool {
	return fixedHostRe.MatchString(f.leadingConst(c, n, depth))
}

// leadingConst returns the constant text that expression n starts with.
func (f *file) leadingConst(c *catalog, n int32, depth int) string {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return ""
	}
	switch f.kind(n) {
	case "string":
		var b strings.Builder
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			switch f.nodes[i].kind {
			case "interpolation":
				return b.String()
			case "string_content", "escape_sequence":
				if f.nodes[f.nodes[i].parent].kind == "string" {
					b.WriteString(f.text(i))
				}
			}
		}
		return b.String()
	case "concatenated_string":
		var b strings.Builder
		for _, k := range f.namedChildren(n) {
			b.WriteString(f.leadingConst(c, k, depth+1))
			if !f.isConst(c, k, 0) {
				break
			}
		}
		return b.String()
	case "binary_operator":
		l := f.child(n, "left")
		s := f.leadingConst(c, l, depth+1)
		switch f.text(f.child(n, "operator")) {
		case "+":
			if f.isConst(c, l, 0) {
				s += f.leadingConst(c, f.child(n, "right"), depth+1)
			}
			return s
		case "%":
			if k := strings.IndexByte(s, '%'); k >= 0 {
				s = s[:k]
			}
			return s
		}
	case "call":
		fu := f.unparen(f.child(n, "function"))
		if f.kind(fu) == "attribute" && f.text(f.child(fu, "attribute")) == "format" {
			s := f.leadingConst(c, f.child(fu, "object"), depth+1)
			if k := strings.IndexByte(s, '{'); k >= 0 {
				s = s[:k]
			}
			return s
		}
	case "identifier":
		name := f.text(n)
		for ff := f.facts(c, n); ff != nil; ff = ff.outer {
			if _, ok := ff.params[name]; ok {
				return ""
			}
			if vals, ok := ff.assigns[name]; ok {
				if len(vals) != 1 || vals[0] == n {
					return ""
				}
				return f.leadingConst(c, vals[0], depth+1)
			}
		}
	}
	return ""
}

// matchBuild runs the build matchers on n when n is the outermost node of
// a run-time string build: an f-string, a + or % expression, or a
// .format() call.
func (f *file) matchBuild(c *catalog, n int32, out *collector) {
	if !f.isBuild(n) {
		return
	}
	p := f.parent(n)
	for f.kind(p) == "parenthesized_expression" {
		p = f.parent(p)
	}
	if f.isBuild(p) {
		return // reported at the outer build
	}
	var text strings.Builder
	var parts []int32
	f.buildParts(n, &text, &parts, 0)
	if len(parts) == 0 || text.Len() == 0 {
		return
	}
	s := text.String()
	for _, m := range c.builds {
		if !hasHint(m.hint, strings.ToLower(s)) || !m.re.MatchString(s) {
			continue
		}
		for _, part := range parts {
			if f.argTest(c, m.value, part) != m.value.not {
				out.add(m, n)
				break
			}
		}
	}
}

// isBuild reports whether n builds a string from parts at run time.
func (f *file) isBuild(n int32) bool {
	switch f.kind(n) {
	case "string":
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			if f.nodes[i].kind == "interpolation" {
				return true
			}
		}
	case "binary_operator":
		switch f.text(f.child(n, "operator")) {
		case "+", "%":
			return true
		}
	case "call":
		fu := f.unparen(f.child(n, "function"))
		return f.kind(fu) == "attribute" && f.text(f.child(fu, "attribute")) == "format"
	}
	return false
}

// buildParts collects the constant text and the interpolated expressions
// of a string build.
func (f *file) buildParts(n int32, text *strings.Builder, parts *[]int32, depth int) {
	n = f.unparen(n)
	if n == noNode || depth > 32 {
		return
	}
	switch f.kind(n) {
	case "string":
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			switch f.nodes[i].kind {
			case "interpolation":
				*parts = append(*parts, f.child(i, "expression"))
				i = f.nodes[i].subEnd - 1
			case "string_content", "escape_sequence":
				text.WriteString(f.text(i))
			}
		}
		return
	case "concatenated_string":
		for _, k := range f.namedChildren(n) {
			f.buildParts(k, text, parts, depth+1)
		}
		return
	case "binary_operator":
		switch f.text(f.child(n, "operator")) {
		case "+":
			f.buildParts(f.child(n, "left"), text, parts, depth+1)
			f.buildParts(f.child(n, "right"), text, parts, depth+1)
			return
		case "%":
			f.buildParts(f.child(n, "left"), text, parts, depth+1)
			r := f.unparen(f.child(n, "right"))
			if f.kind(r) == "tuple" || f.kind(r) == "dictionary" {
				*parts = append(*parts, f.namedChildren(r)...)
			} else {
				*parts = append(*parts, r)
			}
			return
		}
	case "call":
		fu := f.unparen(f.child(n, "function"))
		if f.kind(fu) == "attribute" && f.text(f.child(fu, "attribute")) == "format" {
			f.buildParts(f.child(fu, "object"), text, parts, depth+1)
			for _, a := range f.namedChildren(f.child(n, "arguments")) {
				if f.kind(a) == "keyword_argument" {
					a = f.child(a, "value")
				}
				*parts = append(*parts, a)
			}
			return
		}
	}
	*parts = append(*parts, n)
}
