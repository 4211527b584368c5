package analyzer

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	sitter "github.com/tree-sitter/go-tree-sitter"
	python "github.com/tree-sitter/tree-sitter-python/bindings/go"
)

// maxParseErrors caps the parse errors reported per file.
const maxParseErrors = 10

// Analyzer holds the compiled rule catalog. It is safe for concurrent use:
// the catalog and the compiled query are read-only after New (tree-sitter
// documents TSQuery as immutable and shareable between threads; each call
// gets its own QueryCursor), while parsers, which are not thread-safe, come
// from a free list, one per call. The free list is explicit rather than a
// sync.Pool because parsers hold C memory that must be Closed, not dropped.
type Analyzer struct {
	cat    *catalog
	lang   *sitter.Language
	gram   grammar
	query  *sitter.Query
	qmatch []*matcher // pattern index -> matcher
	qcap   uint       // index of the @match capture

	mu      sync.Mutex
	parsers []*sitter.Parser
	closed  bool
	files   sync.Pool // *file scratch space (Go memory only)
}

// New compiles the embedded rule catalog and its tree-sitter queries.
func New() (*Analyzer, error) {
	cat, err := loadCatalog(catalogYAML)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	a := &Analyzer{cat: cat, lang: sitter.NewLanguage(python.Language())}
	// Error nodes use the reserved id 0xFFFF, outside the kind table.
	for id := uint32(0); id < a.lang.NodeKindCount(); id++ {
		a.gram.kinds = append(a.gram.kinds, a.lang.NodeKindForId(uint16(id)))
		a.gram.named = append(a.gram.named, a.lang.NodeKindIsNamed(uint16(id)))
	}
	for id := uint32(0); id <= a.lang.FieldCount(); id++ {
		a.gram.fields = append(a.gram.fields, a.lang.FieldNameForId(uint16(id)))
	}
	if err := a.compileQueries(); err != nil {
		return nil, err
	}
	a.files.New = func() any { return &file{} }
	return a, nil
}

// compileQueries joins every query matcher into one tree-sitter query so a
// single cursor pass serves them all; pattern start offsets map each
// pattern back to its matcher.
func (a *Analyzer) compileQueries() error {
	if len(a.cat.queries) == 0 {
		return nil
	}
	var src strings.Builder
	var starts []int
	for _, m := range a.cat.queries {
		starts = append(starts, src.Len())
		src.WriteString(m.query)
		src.WriteString("\n")
	}
	q, qerr := sitter.NewQuery(a.lang, src.String())
	if qerr != nil {
		k := sort.SearchInts(starts, int(qerr.Offset)+1) - 1
		if k < 0 {
			k = 0
		}
		return fmt.Errorf("analyzer: rules.yaml: rule %q: query: %v", a.cat.queries[k].rule.ID, qerr)
	}
	cap, ok := q.CaptureIndexForName("match")
	if !ok {
		q.Close()
		return errors.New("analyzer: rules.yaml: queries must capture @match")
	}
	a.qcap = cap
	for i := uint(0); i < q.PatternCount(); i++ {
		k := sort.SearchInts(starts, int(q.StartByteForPattern(i))+1) - 1
		a.qmatch = append(a.qmatch, a.cat.queries[k])
	}
	a.query = q
	return nil
}

// Close releases the parsers and the compiled query. Analyze must not be
// running or called afterwards.
func (a *Analyzer) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	for _, p := range a.parsers {
		p.Close()
	}
	a.parsers = nil
	if a.query != nil {
		a.query.Close()
		a.query = nil
	}
}

// Rules returns a copy of the rule catalog.
func (a *Analyzer) Rules() []Rule {
	out := make([]Rule, len(a.cat.rules))
	for i, r := range a.cat.rules {
		out[i] = r.Rule
		out[i].CWE = append([]string(nil), r.CWE...)
	}
	return out
}

func (a *Analyzer) getParser() (*sitter.Parser, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("analyzer: used after Close")
	}
	if n := len(a.parsers); n > 0 {
		p := a.parsers[n-1]
		a.parsers = a.parsers[:n-1]
		return p, nil
	}
	p := sitter.NewParser()
	if err := p.SetLanguage(a.lang); err != nil {
		p.Close()
		return nil, fmt.Errorf("analyzer: set Python grammar: %w", err)
	}
	return p, nil
}

func (a *Analyzer) putParser(p *sitter.Parser) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		p.Close()
		return
	}
	a.parsers = append(a.parsers, p)
}

// Analyze parses src as lang (only "python" is supported) and runs every
// rule. Code with syntax errors is still analysed as far as tree-sitter
// could recover it, but Parsed is false and ParseErrors say where.
func (a *Analyzer) Analyze(src []byte, lang string) (Result, error) {
	switch strings.ToLower(lang) {
	case "python", "py", "python3":
	default:
		return Result{}, fmt.Errorf("analyze: language %q not supported (want python)", lang)
	}
	p, err := a.getParser()
	if err != nil {
		return Result{}, err
	}
	defer a.putParser(p)
	tree := p.Parse(src, nil)
	if tree == nil {
		return Result{}, errors.New("analyze: tree-sitter returned no tree")
	}
	defer tree.Close()

	f := a.files.Get().(*file)
	defer a.files.Put(f)
	f.src = src
	f.colShift = 0
	hasErr := tree.RootNode().HasError()
	f.buildTree(tree, &a.gram, hasErr)
	f.computeLines()
	res := Result{Parsed: !hasErr}
	if hasErr {
		res.ParseErrors = f.parseErrors()
		if len(res.ParseErrors) == 0 {
			res.ParseErrors = []string{"line 1: syntax error"}
		}
	}
	// tree-sitter accepts an indented first statement; Python does not.
	if first := f.firstNamed(0); first != noNode && f.nodes[first].kind != "comment" {
		if l, c := f.pos(f.nodes[first].start); c > 1 {
			res.Parsed = false
			res.ParseErrors = append([]string{fmt.Sprintf("line %d, column %d: unexpected indent", l, c)}, res.ParseErrors...)
		}
	}
	res.Findings = a.runRules(tree, f)
	if hasErr {
		// Fragments (indented method bodies, text starting inside a
		// docstring) are common in benchmark data and in model output;
		// also analyse the repair that parses best and merge its findings.
		if t2 := a.repair(p, f, src); t2 != nil {
			defer t2.Close()
			res.Findings = mergeFindings(res.Findings, a.runRules(t2, f))
		}
	}
	if hasErr {
		// String rules (keys, tokens) also scan the raw text, since a
		// broken parse can swallow the literal that holds them.
		res.Findings = mergeFindings(res.Findings, a.scanRawStrings(src))
	}
	f.src = nil
	return res, nil
}

// repair tries simple fixes of a fragment that failed to parse: removing
// the common indentation and opening a docstring the fragment starts in.
// If one parses with fewer errors, f is rebuilt from it (line numbers are
// kept; columns are shifted back by the removed indentation) and its tree
// is returned; otherwise nil.
func (a *Analyzer) repair(p *sitter.Parser, f *file, src []byte) *sitter.Tree {
	best := f.errorCount()
	indent := commonIndent(src)
	var bestTree *sitter.Tree
	var bestSrc []byte
	bestShift := 0
	for _, dedent := range []bool{false, true} {
		if dedent && indent == 0 {
			continue
		}
		for _, fix := range docstringFixes(src) {
			cand := src
			if dedent {
				cand = dedentSrc(src, indent)
			}
			cand = append(append([]byte(fix.open), cand...), fix.close...)
			if closers := openBrackets(cand); closers != "" {
				// Truncated output (a token limit mid-call) leaves
				// brackets open; closing them keeps the statement.
				cand = append(append(cand, '\n'), closers...)
			}
			if bytes.Equal(cand, src) {
				continue
			}
			t := p.Parse(cand, nil)
			if t == nil {
				continue
			}
			var g file
			g.src = cand
			g.buildTree(t, &a.gram, true)
			if n := g.errorCount(); n < best {
				if bestTree != nil {
					bestTree.Close()
				}
				best, bestTree, bestSrc = n, t, cand
				bestShift = 0
				if dedent {
					bestShift = indent
				}
			} else {
				t.Close()
			}
		}
	}
	if bestTree == nil {
		return nil
	}
	f.src = bestSrc
	f.colShift = bestShift
	f.buildTree(bestTree, &a.gram, bestTree.RootNode().HasError())
	f.computeLines()
	return bestTree
}

// docstringFix wraps a fragment so that a docstring it starts or ends
// inside is closed: open is prepended, close appended (after a newline, so
// line numbers are kept).
type docstringFix struct{ open, close string }

// docstringFixes lists the wrappings worth trying for src, starting with
// none. A fragment cut from a file can start inside a docstring, end inside
// one, or both (then its own triple quotes balance and only wrapping both
// ends parses).
func docstringFixes(src []byte) []docstringFix {
	fixes := []docstringFix{{}}
	for _, q := range []string{`"""`, "'''"} {
		n := strings.Count(string(src), q)
		switch {
		case n%2 == 1:
			fixes = append(fixes, docstringFix{open: q}, docstringFix{close: "\n" + q})
		case n > 0:
			fixes = append(fixes, docstringFix{open: q, close: "\n" + q})
		}
	}
	return fixes
}

// openBrackets returns the closing brackets that src leaves open, in
// closing order, skipping strings and comments.
func openBrackets(src []byte) string {
	var stack []byte
	for i := 0; i < len(src); i++ {
		switch ch := src[i]; ch {
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case '\'', '"':
			triple := i+2 < len(src) && src[i+1] == ch && src[i+2] == ch
			if triple {
				i += 3
				for i < len(src) && !(src[i] == ch && i+2 < len(src) && src[i+1] == ch && src[i+2] == ch) {
					if src[i] == '\\' {
						i++
					}
					i++
				}
				i += 2
				continue
			}
			for i++; i < len(src) && src[i] != ch && src[i] != '\n'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '(':
			stack = append(stack, ')')
		case '[':
			stack = append(stack, ']')
		case '{':
			stack = append(stack, '}')
		case ')', ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	out := make([]byte, len(stack))
	for k := range stack {
		out[k] = stack[len(stack)-1-k]
	}
	return string(out)
}

func (f *file) errorCount() int {
	n := 0
	for i := range f.nodes {
		if f.nodes[i].kind == "ERROR" || f.nodes[i].missing {
			n++
		}
	}
	return n
}

// commonIndent returns the number of leading spaces shared by all
// non-blank lines (tabs count as one column each).
func commonIndent(src []byte) int {
	min := -1
	for _, l := range strings.Split(string(src), "\n") {
		t := strings.TrimLeft(l, " \t")
		if strings.TrimSpace(t) == "" {
			continue
		}
		if d := len(l) - len(t); min < 0 || d < min {
			min = d
		}
	}
	if min < 0 {
		return 0
	}
	return min
}

func dedentSrc(src []byte, n int) []byte {
	lines := strings.Split(string(src), "\n")
	for i, l := range lines {
		if len(l) >= n && strings.TrimLeft(l[:n], " \t") == "" {
			lines[i] = l[n:]
		} else {
			lines[i] = strings.TrimLeft(l, " \t")
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// scanRawStrings runs the string matchers over the raw source text.
func (a *Analyzer) scanRawStrings(src []byte) []Finding {
	var out []Finding
	var lower string
	g := file{src: src}
	g.computeLines()
	for _, m := range a.cat.strs {
		if len(m.hint) > 0 {
			if lower == "" {
				lower = strings.ToLower(string(src))
			}
			if !hasHint(m.hint, lower) {
				continue
			}
		}
		if m.re.String()[0] == '^' {
			continue // anchored patterns describe a whole literal
		}
		for _, loc := range m.re.FindAllIndex(src, 8) {
			l, c := g.pos(uint32(loc[0]))
			el, ec := g.pos(uint32(loc[1]))
			out = append(out, Finding{RuleID: m.rule.ID, CWE: append([]string(nil), m.rule.CWE...),
				Severity: m.severity, Message: m.rule.Message, Line: l, Column: c, EndLine: el, EndColumn: ec,
				Snippet: string(src[loc[0]:loc[1]])})
		}
	}
	return out
}

func (a *Analyzer) runRules(tree *sitter.Tree, f *file) []Finding {
	f.collectModule()
	var col collector
	f.matchAll(a.cat, &col)
	if a.query != nil {
		a.runQueries(tree, f, &col)
	}
	return f.findings(col.hits)
}

// mergeFindings adds to a the findings of b not already reported by the
// same rule on the same line.
func mergeFindings(a, b []Finding) []Finding {
	n := len(a)
	for _, fb := range b {
		dup := false
		for _, fa := range a[:n] {
			if fa.RuleID == fb.RuleID && fa.Line == fb.Line {
				dup = true
				break
			}
		}
		if !dup {
			a = append(a, fb)
		}
	}
	sortFindings(a)
	return a
}

func (a *Analyzer) runQueries(tree *sitter.Tree, f *file, col *collector) {
	qc := sitter.NewQueryCursor()
	defer qc.Close()
	ms := qc.Matches(a.query, tree.RootNode(), f.src)
	for m := ms.Next(); m != nil; m = ms.Next() {
		for _, c := range m.Captures {
			if uint(c.Index) != a.qcap {
				continue
			}
			kid := int(c.Node.KindId())
			if kid >= len(a.gram.kinds) {
				continue // ERROR nodes are never rule targets
			}
			if n := f.nodeAt(uint32(c.Node.StartByte()), uint32(c.Node.EndByte()), a.gram.kinds[kid]); n != noNode {
				col.add(a.qmatch[m.PatternIndex], n)
			}
		}
	}
}

// nodeAt finds the flat node with the given span and kind.
func (f *file) nodeAt(start, end uint32, kind string) int32 {
	i := sort.Search(len(f.nodes), func(i int) bool { return f.nodes[i].start >= start })
	for ; i < len(f.nodes) && f.nodes[i].start == start; i++ {
		if f.nodes[i].end == end && f.nodes[i].kind == kind {
			return int32(i)
		}
	}
	return noNode
}

func (f *file) findings(hits []hit) []Finding {
	out := make([]Finding, 0, len(hits))
	for _, h := range hits {
		n := f.nodes[h.node]
		l, c := f.pos(n.start)
		el, ec := f.pos(n.end)
		snip := string(f.src[n.start:n.end])
		if k := strings.IndexByte(snip, '\n'); k >= 0 {
			snip = snip[:k]
		}
		if len(snip) > 200 {
			cut := 200
			for cut > 0 && !utf8.RuneStart(snip[cut]) {
				cut--
			}
			snip = snip[:cut]
		}
		out = append(out, Finding{
			RuleID: h.rule.ID, CWE: append([]string(nil), h.rule.CWE...), Severity: h.sev,
			Message: h.rule.Message, Line: l, Column: c, EndLine: el, EndColumn: ec,
			Snippet: strings.TrimSpace(snip),
		})
	}
	sortFindings(out)
	return out
}

func sortFindings(out []Finding) {
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		if out[i].Column != out[j].Column {
			return out[i].Column < out[j].Column
		}
		return out[i].RuleID < out[j].RuleID
	})
}

// parseErrors describes the ERROR and MISSING nodes of a broken parse.
func (f *file) parseErrors() []string {
	var out []string
	for i := 0; i < len(f.nodes) && len(out) < maxParseErrors; i++ {
		n := &f.nodes[i]
		l, c := f.pos(n.start)
		switch {
		case n.kind == "ERROR":
			snip := strings.TrimSpace(string(f.src[n.start:n.end]))
			if k := strings.IndexByte(snip, '\n'); k >= 0 {
				snip = snip[:k]
			}
			if len(snip) > 40 {
				snip = snip[:40] + "..."
			}
			out = append(out, fmt.Sprintf("line %d, column %d: syntax error near %q", l, c, snip))
			i = int(n.subEnd) - 1
		case n.missing:
			out = append(out, fmt.Sprintf("line %d, column %d: missing %q", l, c, n.kind))
		}
	}
	return out
}
