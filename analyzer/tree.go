package analyzer

import (
	"sort"

	sitter "github.com/tree-sitter/go-tree-sitter"
)

// The rules run on a flat Go copy of the tree-sitter tree. Walking the C tree
// node by node from the rules would cost several cgo calls per visit and
// per rule; copying it once with a cursor keeps cgo traffic linear in the
// tree size and lets the matchers be plain Go.

const noNode = -1

type node struct {
	kind        string // tree-sitter node kind (interned from the grammar)
	field       string // field name in the parent, "" if none
	named       bool
	missing     bool   // inserted by error recovery
	start, end  uint32 // byte offsets into the source
	parent      int32
	firstChild  int32
	nextSibling int32
	subEnd      int32 // one past the last node of the subtree (preorder)
}

// grammar holds the node-kind and field-name tables of the language, so
// the tree copy needs no cgo call to name a node.
type grammar struct {
	kinds  []string // node kind by id
	named  []bool   // whether the kind is a named node
	fields []string // field name by id
}

// file is one parsed source with the per-file facts the rules consult.
type file struct {
	src   []byte
	nodes []node
	lines []int // byte offset of the start of each line
	// colShift is added to reported columns when the analysed text was
	// dedented from the original.
	colShift int

	imports   map[string]string // bound name -> qualified name
	starMods  []string          // modules imported with `from m import *`
	defs      []defSite         // function/class definitions, for shadowing
	funcFacts map[int32]*funcFacts
}

type defSite struct {
	name  string
	pos   uint32
	scope int32 // the block holding the definition
}

// buildTree copies tree into f.nodes with a single cursor walk.
func (f *file) buildTree(t *sitter.Tree, g *grammar, checkMissing bool) {
	f.nodes = f.nodes[:0]
	cur := t.Walk()
	defer cur.Close()
	var stack []int32 // index of the current node's ancestors
	last := int32(noNode)
	for {
		n := cur.Node()
		id := int32(len(f.nodes))
		parent := int32(noNode)
		if len(stack) > 0 {
			parent = stack[len(stack)-1]
		}
		kid := n.KindId()
		kind, named := "ERROR", true
		if int(kid) < len(g.kinds) {
			kind, named = g.kinds[kid], g.named[kid]
		}
		missing := checkMissing && n.IsMissing()
		fid := cur.FieldId()
		field := ""
		if int(fid) < len(g.fields) {
			field = g.fields[fid]
		}
		f.nodes = append(f.nodes, node{
			kind: kind, field: field, named: named, missing: missing,
			start: uint32(n.StartByte()), end: uint32(n.EndByte()),
			parent: parent, firstChild: noNode, nextSibling: noNode, subEnd: id + 1,
		})
		if last != noNode && f.nodes[last].parent == parent {
			f.nodes[last].nextSibling = id
		} else if parent != noNode {
			f.nodes[parent].firstChild = id
		}
		if cur.GotoFirstChild() {
			stack = append(stack, id)
			last = noNode
			continue
		}
		last = id
		for !cur.GotoNextSibling() {
			if !cur.GotoParent() {
				for _, p := range stack {
					f.nodes[p].subEnd = int32(len(f.nodes))
				}
				return
			}
			last = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			f.nodes[last].subEnd = int32(len(f.nodes))
		}
	}
}

func (f *file) computeLines() {
	f.lines = append(f.lines[:0], 0)
	for i, c := range f.src {
		if c == '\n' {
			f.lines = append(f.lines, i+1)
		}
	}
}

// pos converts a byte offset to a 1-based line and column (in bytes).
func (f *file) pos(off uint32) (line, col int) {
	i := sort.Search(len(f.lines), func(i int) bool { return f.lines[i] > int(off) }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, int(off) - f.lines[i] + 1 + f.colShift
}

func (f *file) text(n int32) string {
	if n == noNode {
		return ""
	}
	return string(f.src[f.nodes[n].start:f.nodes[n].end])
}

func (f *file) kind(n int32) string {
	if n == noNode {
		return ""
	}
	return f.nodes[n].kind
}

// child returns the first child of n with the given field name.
func (f *file) child(n int32, field string) int32 {
	if n == noNode {
		return noNode
	}
	for c := f.nodes[n].firstChild; c != noNode; c = f.nodes[c].nextSibling {
		if f.nodes[c].field == field {
			return c
		}
	}
	return noNode
}

// namedChildren returns the named children of n, skipping comments.
func (f *file) namedChildren(n int32) []int32 {
	var out []int32
	if n == noNode {
		return nil
	}
	for c := f.nodes[n].firstChild; c != noNode; c = f.nodes[c].nextSibling {
		if f.nodes[c].named && f.nodes[c].kind != "comment" {
			out = append(out, c)
		}
	}
	return out
}

// firstNamed returns the first named, non-comment child of n.
func (f *file) firstNamed(n int32) int32 {
	if n == noNode {
		return noNode
	}
	for c := f.nodes[n].firstChild; c != noNode; c = f.nodes[c].nextSibling {
		if f.nodes[c].named && f.nodes[c].kind != "comment" {
			return c
		}
	}
	return noNode
}

func (f *file) parent(n int32) int32 {
	if n == noNode {
		return noNode
	}
	return f.nodes[n].parent
}

// unparen strips parentheses around an expression.
func (f *file) unparen(n int32) int32 {
	for n != noNode && f.nodes[n].kind == "parenthesized_expression" {
		n = f.firstNamed(n)
	}
	return n
}

// within reports whether n lies inside (or is) anc.
func (f *file) within(n, anc int32) bool {
	return n >= anc && n < f.nodes[anc].subEnd
}

// enclosing returns the nearest ancestor of n (excluding n) of one of kinds.
func (f *file) enclosing(n int32, kinds ...string) int32 {
	for p := f.parent(n); p != noNode; p = f.nodes[p].parent {
		for _, k := range kinds {
			if f.nodes[p].kind == k {
				return p
			}
		}
	}
	return noNode
}
