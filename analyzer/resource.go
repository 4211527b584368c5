package analyzer

import "strings"

// Resource-leak analysis. A resource (file, socket, connection) is safe when
// it is managed by `with`, closed in a `finally`, closed by the statement
// right after it was opened, or handed off (returned, yielded, stored on an
// object, wrapped in a context manager). Anything else can leak on an
// exception path, which is what CWE-400/CWE-664 findings report.

// handoffCalls take ownership of a resource passed to them.
var handoffCalls = map[string]bool{
	"closing": true, "enter_context": true, "push": true, "callback": true,
	"append": true, "add": true, "extend": true, "put": true, "register": true,
	"setdefault": true, "insert": true, "ExitStack": true, "nullcontext": true,
}

// climb skips parentheses upward and returns the first real parent.
func (f *file) climb(n int32) (child, parent int32) {
	p := f.parent(n)
	for f.kind(p) == "parenthesized_expression" {
		n, p = p, f.parent(p)
	}
	return n, p
}

// insideWith reports whether n is part of a with-statement's item list.
func (f *file) insideWith(n int32) bool {
	for p := f.parent(n); p != noNode; p = f.parent(p) {
		switch f.kind(p) {
		case "with_item":
			return true
		case "block", "function_definition", "module", "expression_statement":
			return false
		}
	}
	return false
}

func (f *file) calleeLast(call int32) string {
	fn := f.unparen(f.child(call, "function"))
	switch f.kind(fn) {
	case "identifier":
		return f.text(fn)
	case "attribute":
		return f.text(f.child(fn, "attribute"))
	}
	return ""
}

// leaks decides whether the resource created by call may be left open.
func (f *file) leaks(c *catalog, m *matcher, call int32) bool {
	n, p := f.climb(call)
	switch f.kind(p) {
	case "with_item", "return_statement", "yield", "lambda", "await":
		return false
	case "as_pattern":
		return !f.insideWith(p)
	case "argument_list", "keyword_argument":
		if f.insideWith(p) {
			return false
		}
		outer := f.parent(p)
		if f.kind(p) == "keyword_argument" {
			outer = f.parent(f.parent(p))
		}
		return !handoffCalls[f.calleeLast(outer)] && !f.insideReturn(outer)
	case "attribute":
		// open(p).read(): nothing can close it before the garbage collector.
		return f.child(p, "object") == n && !f.insideWith(p)
	case "expression_statement":
		return true
	case "for_statement":
		return f.child(p, "right") == n
	case "assignment":
		if f.child(p, "right") != n {
			return false
		}
		left := f.child(p, "left")
		if f.kind(left) != "identifier" {
			return false // stored on an object or unpacked: ownership moves
		}
		return f.nameLeaks(c, m, p, f.text(left))
	}
	return false
}

func (f *file) insideReturn(n int32) bool {
	for p := n; p != noNode; p = f.parent(p) {
		switch f.kind(p) {
		case "return_statement", "yield":
			return true
		case "block", "module", "function_definition":
			return false
		}
	}
	return false
}

// inFinally reports whether n is inside a finally clause within scope s.
func (f *file) inFinally(n, s int32) bool {
	for p := f.parent(n); p != noNode && p != s; p = f.parent(p) {
		if f.kind(p) == "finally_clause" {
			return true
		}
	}
	return false
}

// stmtOf returns the statement (child of a block or the module) holding n.
func (f *file) stmtOf(n int32) int32 {
	for p := n; p != noNode; p = f.parent(p) {
		switch f.kind(f.parent(p)) {
		case "block", "module":
			return p
		}
	}
	return noNode
}

func (f *file) nextStmt(s int32) int32 {
	for x := f.nodes[s].nextSibling; x != noNode; x = f.nodes[x].nextSibling {
		if f.nodes[x].named && f.nodes[x].kind != "comment" {
			return x
		}
	}
	return noNode
}

// nameLeaks inspects the uses of the name a resource was bound to.
func (f *file) nameLeaks(c *catalog, m *matcher, assign int32, name string) bool {
	s := f.scopeOf(assign)
	target := f.child(assign, "left")
	var closes []int32
	end := f.nodes[s].subEnd
	for i := s + 1; i < end; i++ {
		if f.nodes[i].kind != "identifier" || i == target || f.text(i) != name {
			continue
		}
		id, p := f.climb(i)
		switch f.kind(p) {
		case "attribute":
			if f.child(p, "object") != id {
				continue
			}
			meth := f.text(f.child(p, "attribute"))
			if !contains(m.release, meth) {
				if f.insideWith(p) {
					return false // with v.lock: / with v.cursor() ... managed elsewhere
				}
				continue
			}
			if _, pp := f.climb(p); f.kind(pp) != "call" {
				return false // v.close passed as a callback (atexit etc.)
			}
			if f.inFinally(p, s) {
				return false
			}
			closes = append(closes, p)
		case "return_statement", "yield", "with_item", "as_pattern":
			return false
		case "argument_list", "keyword_argument":
			outer := f.parent(p)
			if f.kind(p) == "keyword_argument" {
				outer = f.parent(f.parent(p))
			}
			if f.insideWith(p) || handoffCalls[f.calleeLast(outer)] || f.insideReturn(outer) {
				return false
			}
			if q, _ := f.qualName(f.child(outer, "function")); anyGlob(m.relCalls, q) {
				if f.inFinally(outer, s) {
					return false
				}
				closes = append(closes, outer)
			}
		case "assignment":
			if f.child(p, "right") == id {
				return false // aliased or stored elsewhere: ownership moves
			}
		case "tuple", "list", "dictionary", "pair", "set":
			return false
		}
	}
	if f.insideReturn(assign) {
		return false
	}
	stmt := f.stmtOf(assign)
	next := f.nextStmt(stmt)
	for _, cl := range closes {
		// Closing on the very next statement leaves no operation in
		// between that could raise.
		if next != noNode && f.stmtOf(cl) == next {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lockLeaks decides whether a lock acquired by call may stay held: it is
// safe only when released in a finally clause of the same function.
func (f *file) lockLeaks(m *matcher, call int32) bool {
	fn := f.unparen(f.child(call, "function"))
	recv := f.text(f.child(fn, "object"))
	s := f.scopeOf(call)
	end := f.nodes[s].subEnd
	for i := s + 1; i < end; i++ {
		if f.nodes[i].kind != "call" {
			continue
		}
		g := f.unparen(f.child(i, "function"))
		if f.kind(g) != "attribute" || !contains(m.release, f.text(f.child(g, "attribute"))) {
			continue
		}
		if strings.TrimSpace(f.text(f.child(g, "object"))) == recv && f.inFinally(i, s) {
			return false
		}
	}
	return true
}
