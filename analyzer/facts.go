package analyzer

import "strings"

// Taint levels, as bits: a value derived from a function parameter, or from
// data a remote or interactive user controls (input(), request.*, argv).
const (
	taintParam uint8 = 1
	taintUser  uint8 = 2
)

// funcFacts are the flow-insensitive facts about one function body (or the
// module body): what each local name may be assigned, and its parameters.
type funcFacts struct {
	scope   int32 // function_definition, or the module root
	outer   *funcFacts
	params  map[string]uint8
	assigns map[string][]int32 // name -> assigned expressions

	taint    map[string]uint8
	visiting map[string]bool
	// validated names appear in a guard (allow-list membership, a
	// containment or format check) in some condition of the function.
	validated map[string]bool
}

// collectModule records imports and definitions for the whole file.
func (f *file) collectModule() {
	f.imports = map[string]string{}
	f.starMods = f.starMods[:0]
	f.defs = f.defs[:0]
	f.funcFacts = map[int32]*funcFacts{}
	for i := int32(0); i < int32(len(f.nodes)); i++ {
		switch f.nodes[i].kind {
		case "import_statement":
			for _, c := range f.namedChildren(i) {
				switch f.nodes[c].kind {
				case "dotted_name":
					name := f.text(c)
					head := name
					if k := strings.IndexByte(name, '.'); k >= 0 {
						head = name[:k]
					}
					f.imports[head] = head
				case "aliased_import":
					f.imports[f.text(f.child(c, "alias"))] = f.text(f.child(c, "name"))
				}
			}
		case "import_from_statement":
			mod := f.text(f.child(i, "module_name"))
			for c := f.nodes[i].firstChild; c != noNode; c = f.nodes[c].nextSibling {
				switch {
				case f.nodes[c].kind == "wildcard_import":
					f.starMods = append(f.starMods, mod)
				case f.nodes[c].field != "name":
				case f.nodes[c].kind == "dotted_name":
					f.imports[f.text(c)] = mod + "." + f.text(c)
				case f.nodes[c].kind == "aliased_import":
					f.imports[f.text(f.child(c, "alias"))] = mod + "." + f.text(f.child(c, "name"))
				}
			}
		case "function_definition", "class_definition":
			f.defs = append(f.defs, defSite{name: f.text(f.child(i, "name")), pos: f.nodes[i].start, scope: f.parent(i)})
		}
	}
}

// qualName resolves a callee or attribute expression to a dotted name with
// imports applied ("o.system" after `import os as o` -> "os.system"). Parts
// it cannot name become "?" and call results get "()". ok is false when the
// expression is not a name chain at all.
func (f *file) qualName(n int32) (string, bool) {
	n = f.unparen(n)
	switch f.kind(n) {
	case "identifier":
		name := f.text(n)
		if q, ok := f.imports[name]; ok {
			return q, true
		}
		if f.shadowed(name, n) {
			return "<local>." + name, true
		}
		return name, true
	case "attribute":
		obj, _ := f.qualName(f.child(n, "object"))
		return obj + "." + f.text(f.child(n, "attribute")), true
	case "call":
		fn, _ := f.qualName(f.child(n, "function"))
		return fn + "()", true
	}
	return "?", false
}

// shadowed reports whether a bare name refers to a def or class defined
// earlier in a scope enclosing the use (so `eval` is not the builtin).
func (f *file) shadowed(name string, use int32) bool {
	for _, d := range f.defs {
		if d.name == name && d.pos < f.nodes[use].start && (d.scope == noNode || f.within(use, d.scope)) {
			return true
		}
	}
	return false
}

// candidates returns the names a callee may denote: the resolved name and,
// for unresolved bare names, the same name inside each star-imported module.
func (f *file) candidates(n int32) []string {
	q, ok := f.qualName(n)
	if !ok {
		return nil
	}
	out := []string{q}
	if len(f.starMods) > 0 && f.kind(f.unparen(n)) == "identifier" && !strings.Contains(q, ".") {
		for _, m := range f.starMods {
			out = append(out, m+"."+q)
		}
	}
	return out
}

// scopeOf returns the function (or module root) whose body holds n.
func (f *file) scopeOf(n int32) int32 {
	if s := f.enclosing(n, "function_definition"); s != noNode {
		return s
	}
	return 0
}

// facts returns (building once) the facts of the scope holding n.
func (f *file) facts(c *catalog, n int32) *funcFacts {
	s := f.scopeOf(n)
	if ff, ok := f.funcFacts[s]; ok {
		return ff
	}
	ff := &funcFacts{scope: s, params: map[string]uint8{}, assigns: map[string][]int32{},
		taint: map[string]uint8{}, visiting: map[string]bool{}, validated: map[string]bool{}}
	f.funcFacts[s] = ff
	if s != 0 {
		ff.outer = f.facts(c, s)
		lvl := taintParam
		if f.isRouteHandler(c, s) {
			lvl |= taintUser
		}
		for _, p := range f.namedChildren(f.child(s, "parameters")) {
			name := p
			switch f.kind(p) {
			case "default_parameter", "typed_default_parameter":
				name = f.child(p, "name")
			case "typed_parameter", "list_splat_pattern", "dictionary_splat_pattern":
				name = f.firstNamed(p)
				if f.kind(name) != "identifier" {
					name = f.firstNamed(name)
				}
			}
			if f.kind(name) == "identifier" {
				if t := f.text(name); t != "self" && t != "cls" {
					ff.params[t] = lvl
				}
			}
		}
	}
	end := f.nodes[s].subEnd
	var conds []int32
	for i := s + 1; i < end; i++ {
		nd := &f.nodes[i]
		switch nd.kind {
		case "function_definition":
			i = nd.subEnd - 1 // nested functions get their own facts
		case "assignment", "augmented_assignment", "for_statement", "for_in_clause":
			f.bind(ff, f.child(i, "left"), f.child(i, "right"))
		case "named_expression":
			f.bind(ff, f.child(i, "name"), f.child(i, "value"))
		case "as_pattern":
			if f.kind(f.parent(i)) == "with_item" {
				f.bind(ff, f.firstNamed(f.child(i, "alias")), f.firstNamed(i))
			}
		case "if_statement", "elif_clause", "while_statement":
			conds = append(conds, f.child(i, "condition"))
		case "assert_statement":
			conds = append(conds, f.firstNamed(i))
		}
	}
	// Guards are read once every binding is known, since validation
	// passes from a checked value to the names it was computed from.
	for _, cond := range conds {
		f.collectGuards(c, ff, cond)
	}
	return ff
}

// bind records that target (a name or a tuple of names) receives value.
func (f *file) bind(ff *funcFacts, target, value int32) {
	if target == noNode || value == noNode {
		return
	}
	switch f.kind(target) {
	case "identifier":
		name := f.text(target)
		ff.assigns[name] = append(ff.assigns[name], value)
	case "pattern_list", "tuple_pattern", "list_pattern", "tuple", "list", "expression_list":
		ts := f.namedChildren(target)
		vs := f.namedChildren(f.unparen(value))
		vk := f.kind(f.unparen(value))
		pairwise := (vk == "expression_list" || vk == "tuple" || vk == "list") && len(vs) == len(ts)
		for k, t := range ts {
			if pairwise {
				f.bind(ff, t, vs[k])
			} else {
				f.bind(ff, t, value)
			}
		}
	}
}

func (f *file) isRouteHandler(c *catalog, fn int32) bool {
	p := f.parent(fn)
	if f.kind(p) != "decorated_definition" {
		return false
	}
	for _, d := range f.namedChildren(p) {
		if f.kind(d) != "decorator" {
			continue
		}
		e := f.firstNamed(d)
		if f.kind(e) == "call" {
			e = f.child(e, "function")
		}
		q, _ := f.qualName(e)
		if anyGlob(c.routeDecos, q) {
			return true
		}
	}
	return false
}

func anyGlob(gs []glob, name string) bool {
	segs := strings.Split(name, ".")
	for _, g := range gs {
		if globMatch(g, segs) {
			return true
		}
	}
	return false
}

// taintOf returns the taint bits of expression n.
func (f *file) taintOf(c *catalog, n int32) uint8 { return f.taint(c, n, nil) }

// taint returns the taint bits of expression n, treating calls to extra as
// sanitizers too (results with extra sanitizers are not cached).
func (f *file) taint(c *catalog, n int32, extra []glob) uint8 {
	n = f.unparen(n)
	if n == noNode {
		return 0
	}
	switch f.nodes[n].kind {
	case "identifier":
		return f.nameTaint(c, f.facts(c, n), f.text(n), extra)
	case "string", "integer", "float", "true", "false", "none", "comparison_operator",
		"not_operator", "lambda", "concatenated_string":
		if f.nodes[n].kind == "string" || f.nodes[n].kind == "concatenated_string" {
			var t uint8
			for i := n + 1; i < f.nodes[n].subEnd; i++ {
				if f.nodes[i].kind == "interpolation" && !f.reprConversion(c, i, extra) {
					t |= f.taint(c, f.child(i, "expression"), extra)
				}
			}
			return t
		}
		return 0
	case "attribute":
		if q, _ := f.qualName(n); anyGlob(c.userAttrs, q) {
			return taintUser
		}
		return f.taint(c, f.child(n, "object"), extra)
	case "subscript":
		return f.taint(c, f.child(n, "value"), extra)
	case "call":
		fn := f.child(n, "function")
		for _, q := range f.candidates(fn) {
			if anyGlob(c.userCalls, q) {
				return taintUser
			}
			if anyGlob(c.sanitizers, q) || anyGlob(extra, q) {
				return 0
			}
		}
		var t uint8
		if f.kind(f.unparen(fn)) == "attribute" {
			t = f.taint(c, fn, extra)
		}
		for _, a := range f.namedChildren(f.child(n, "arguments")) {
			if f.kind(a) == "keyword_argument" {
				a = f.child(a, "value")
			}
			t |= f.taint(c, a, extra)
		}
		return t
	case "conditional_expression":
		kids := f.namedChildren(n)
		var t uint8
		for k, e := range kids {
			if k != 1 { // skip the condition
				t |= f.taint(c, e, extra)
			}
		}
		return t
	}
	var t uint8
	for _, k := range f.namedChildren(n) {
		t |= f.taint(c, k, extra)
	}
	return t
}

func (f *file) nameTaint(c *catalog, ff *funcFacts, name string, extra []glob) uint8 {
	for ; ff != nil; ff = ff.outer {
		_, isParam := ff.params[name]
		vals, isLocal := ff.assigns[name]
		if (isParam || isLocal) && ff.validated[name] {
			return 0
		}
		if isParam {
			return ff.params[name]
		}
		if !isLocal {
			continue
		}
		if t, ok := ff.taint[name]; ok && extra == nil {
			return t
		}
		if ff.visiting[name] {
			return 0
		}
		ff.visiting[name] = true
		var t uint8
		for _, v := range vals {
			t |= f.taint(c, v, extra)
		}
		ff.visiting[name] = false
		if extra == nil {
			ff.taint[name] = t
		}
		return t
	}
	return 0
}

// isConst reports whether n is a compile-time constant (literals, and
// names only ever bound to constants in their scope).
func (f *file) isConst(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return false
	}
	switch f.nodes[n].kind {
	case "string":
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			if f.nodes[i].kind == "interpolation" {
				return false
			}
		}
		return true
	case "concatenated_string", "integer", "float", "true", "false", "none":
		if f.nodes[n].kind == "concatenated_string" {
			for _, k := range f.namedChildren(n) {
				if !f.isConst(c, k, depth+1) {
					return false
				}
			}
		}
		return true
	case "binary_operator":
		return f.isConst(c, f.child(n, "left"), depth+1) && f.isConst(c, f.child(n, "right"), depth+1)
	case "tuple", "list":
		for _, k := range f.namedChildren(n) {
			if !f.isConst(c, k, depth+1) {
				return false
			}
		}
		return true
	case "identifier":
		ff := f.facts(c, n)
		name := f.text(n)
		for ; ff != nil; ff = ff.outer {
			if _, ok := ff.params[name]; ok {
				return false
			}
			if vals, ok := ff.assigns[name]; ok {
				for _, v := range vals {
					if v == n || !f.isConst(c, v, depth+1) {
						return false
					}
				}
				return true
			}
		}
	}
	return false
}

// isDynamicString reports whether n builds a string from non-constant parts
// by formatting: f-strings, %, .format(), + (directly or via a local name).
func (f *file) isDynamicString(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	if n == noNode || depth > 8 {
		return false
	}
	switch f.nodes[n].kind {
	case "string", "concatenated_string":
		return !f.isConst(c, n, 0)
	case "binary_operator":
		op := f.text(f.child(n, "operator"))
		l, r := f.child(n, "left"), f.child(n, "right")
		if op == "%" {
			return f.isStringish(c, l, depth+1) && !f.isConst(c, r, 0)
		}
		if op == "+" {
			if f.isConst(c, l, 0) && f.isConst(c, r, 0) {
				return false
			}
			return f.isStringish(c, l, depth+1) || f.isStringish(c, r, depth+1)
		}
	case "call":
		fn := f.unparen(f.child(n, "function"))
		if f.kind(fn) == "attribute" && f.text(f.child(fn, "attribute")) == "format" &&
			f.isStringish(c, f.child(fn, "object"), depth+1) {
			for _, a := range f.namedChildren(f.child(n, "arguments")) {
				if f.kind(a) == "keyword_argument" {
					a = f.child(a, "value")
				}
				if !f.isConst(c, a, 0) {
					return true
				}
			}
		}
	case "identifier":
		ff := f.facts(c, n)
		name := f.text(n)
		for ; ff != nil; ff = ff.outer {
			if _, ok := ff.params[name]; ok {
				return false
			}
			if vals, ok := ff.assigns[name]; ok {
				for _, v := range vals {
					if v != n && f.isDynamicString(c, v, depth+1) {
						return true
					}
				}
				return false
			}
		}
	}
	return false
}

// isStringish reports whether n is a string literal or a string-building
// expression.
func (f *file) isStringish(c *catalog, n int32, depth int) bool {
	n = f.unparen(n)
	switch f.kind(n) {
	case "string", "concatenated_string":
		return true
	}
	return f.isDynamicString(c, n, depth)
}

// stringValue returns the contents of a constant string literal (without
// quotes or prefix; escapes left as written).
func (f *file) stringValue(n int32) (string, bool) {
	n = f.unparen(n)
	switch f.kind(n) {
	case "string":
		var b strings.Builder
		for i := n + 1; i < f.nodes[n].subEnd; i++ {
			switch f.nodes[i].kind {
			case "interpolation":
				return "", false
			case "string_content", "escape_sequence":
				if f.nodes[f.nodes[i].parent].kind == "string" {
					b.WriteString(f.text(i))
				}
			}
		}
		return b.String(), true
	case "concatenated_string":
		var b strings.Builder
		for _, k := range f.namedChildren(n) {
			s, ok := f.stringValue(k)
			if !ok {
				return "", false
			}
			b.WriteString(s)
		}
		return b.String(), true
	}
	return "", false
}
