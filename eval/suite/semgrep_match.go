package suite

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/dlclark/regexp2/v2"
)

// Pattern element kinds.
const (
	peLit      = iota // a token matched by text (a string literal by content)
	peStrAny          // "..." : any string literal
	peStrBind         // "$X" : any string literal, content bound to $X
	peStrRe           // a string literal whose content matches re (`...$X...`)
	peMeta            // $X : one expression, consistent within a match
	peEllipsis        // ... : any balanced token run
	peTypedInt        // (int $X) : an integer literal
	peDeep            // <... P ...> : an expression or block containing P
)

type pElem struct {
	kind  int
	text  string // literal text or metavariable name
	isStr bool   // peLit: a string literal, compared by content
	quote byte
	re    *regexp.Regexp
	nl    bool       // peEllipsis: on a line of its own (statement level)
	sub   *sgPattern // peDeep: the pattern to find inside
}

// sgPattern is a compiled semgrep pattern: a flat token sequence whose
// brackets line up with the code's.
type sgPattern struct {
	src string
	el  []pElem
}

// errUnsupported marks a rule construct outside the supported subset.
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return "unsupported: " + e.what }

// compilePattern turns a semgrep pattern into elements. A final ";" is
// dropped: semgrep lets an expression-statement pattern match the
// expression inside any statement (its implicit deep-exprstmt option).
func compilePattern(src, lang string) (*sgPattern, error) {
	toks := sgTokenize(src, lang, true)
	for len(toks) > 0 && toks[len(toks)-1].Text == ";" && toks[len(toks)-1].Kind == tkPunct {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty pattern")
	}
	p := &sgPattern{src: src}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.Kind == tkPunct && t.Text == "<" && i+1 < len(toks) && toks[i+1].Kind == tkEllipsis && toks[i+1].Start == t.End:
			end := -1
			for j := i + 2; j+1 < len(toks); j++ {
				if toks[j].Kind == tkEllipsis && toks[j+1].Text == ">" && toks[j+1].Start == toks[j].End {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, errUnsupported{"unclosed deep expression operator <... ...>"}
			}
			sub, err := compilePattern(src[toks[i+1].End:toks[end].Start], lang)
			if err != nil {
				return nil, err
			}
			p.el = append(p.el, pElem{kind: peDeep, sub: sub})
			i = end + 1
		case t.Kind == tkPunct && t.Text == "(" && i+3 < len(toks) && toks[i+1].Text == "int" &&
			toks[i+2].Kind == tkMeta && toks[i+3].Text == ")":
			p.el = append(p.el, pElem{kind: peTypedInt, text: toks[i+2].Text})
			i += 3
		case t.Kind == tkPunct && t.Text == "(" && i+2 < len(toks) && toks[i+1].Kind == tkIdent && toks[i+2].Kind == tkMeta:
			return nil, errUnsupported{"typed metavariable (" + toks[i+1].Text + " $X)"}
		case t.Kind == tkMeta:
			p.el = append(p.el, pElem{kind: peMeta, text: t.Text})
		case t.Kind == tkEllipsis:
			nl := i > 0 && strings.Contains(src[toks[i-1].End:t.Start], "\n")
			p.el = append(p.el, pElem{kind: peEllipsis, nl: nl})
		case t.Kind == tkString:
			p.el = append(p.el, stringElem(t))
		default:
			p.el = append(p.el, pElem{kind: peLit, text: t.Text})
		}
	}
	return p, nil
}

var metaInString = regexp.MustCompile(`\$[A-Z_][A-Z0-9_]*|\.\.\.`)

func stringElem(t sgToken) pElem {
	switch {
	case t.Val == "...":
		return pElem{kind: peStrAny, quote: t.Quote}
	case isMetaName(t.Val):
		return pElem{kind: peStrBind, text: t.Val, quote: t.Quote}
	case metaInString.MatchString(t.Val):
		// `...$VAR...`: PHP interpolation of some variable.
		var b strings.Builder
		b.WriteString(`^(?s)`)
		last := 0
		for _, m := range metaInString.FindAllStringIndex(t.Val, -1) {
			b.WriteString(regexp.QuoteMeta(t.Val[last:m[0]]))
			if t.Val[m[0]:m[1]] == "..." {
				b.WriteString(`.*`)
			} else {
				b.WriteString(`\$\w+`)
			}
			last = m[1]
		}
		b.WriteString(regexp.QuoteMeta(t.Val[last:]) + `$`)
		return pElem{kind: peStrRe, quote: t.Quote, re: regexp.MustCompile(b.String())}
	}
	return pElem{kind: peLit, text: t.Val, isStr: true, quote: t.Quote}
}

// quoteOK: a backtick string (PHP's shell execution, a JS template) only
// matches a backtick pattern; single and double quotes are alike.
func quoteOK(pat, code byte) bool { return (pat == '`') == (code == '`') }

// binding is what a metavariable matched: its tokens' texts (compared
// for consistency) and its byte span; str marks a string's content.
type binding struct {
	toks []string
	s, e int
	str  string
	isS  bool
}

func (b binding) key() string {
	if b.isS {
		return "\x00" + b.str
	}
	return strings.Join(b.toks, " ")
}

type sgEnv map[string]binding

func (e sgEnv) with(name string, b binding) sgEnv {
	n := make(sgEnv, len(e)+1)
	for k, v := range e {
		n[k] = v
	}
	n[name] = b
	return n
}

// unify merges two environments, failing where a name is bound apart.
func unify(a, b sgEnv) (sgEnv, bool) {
	out := make(sgEnv, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if w, ok := out[k]; ok {
			if w.key() != v.key() {
				return nil, false
			}
			continue
		}
		out[k] = v
	}
	return out, true
}

type sgMatch struct {
	s, e int // byte span
	env  sgEnv
}

// Work bounds: a pathological pattern on a long answer stops early (it
// then reports the matches found so far).
const (
	sgMaxSteps    = 50000   // per start position
	sgMaxTotal    = 5000000 // per pattern and document
	sgMaxPerStart = 16
	sgMaxMatches  = 2000
	sgMaxMetaLen  = 48 // balanced units one metavariable may span
)

type sgMatcher struct {
	p     *sgPattern
	d     *sgDoc
	steps int
}

var sgKeywords = map[string]bool{
	"return": true, "if": true, "else": true, "while": true, "for": true, "do": true, "switch": true,
	"case": true, "break": true, "continue": true, "goto": true, "throw": true, "echo": true, "import": true,
}

// unitStops: a metavariable binds one expression, so its run never
// takes in a statement or argument separator, an assignment or a block.
var unitStops = map[string]bool{
	";": true, ",": true, "{": true, "=": true, "+=": true, "-=": true, "*=": true, "/=": true, "%=": true,
	"&=": true, "|=": true, "^=": true, "<<=": true, ">>=": true, ".=": true, "??=": true, ":": true, "=>": true,
}

// prefixKeywords take an operand, so a metavariable's run never ends
// with one.
var prefixKeywords = map[string]bool{"sizeof": true, "typeof": true, "new": true, "delete": true, "await": true, "alignof": true}

// exprStart: punctuation an expression may begin with.
var exprStart = map[string]bool{"(": true, "[": true, "!": true, "-": true, "*": true, "&": true, "~": true, "+": true, "++": true, "--": true, "@": true}

// findAll returns the pattern's matches in d. A match starts at an
// expression or statement boundary: never just after a member access,
// so $X never binds the tail of a.b.
func (p *sgPattern) findAll(d *sgDoc) []sgMatch {
	m := &sgMatcher{p: p, d: d}
	var out []sgMatch
	total := 0
	for st := range d.toks {
		if st > 0 {
			if prev := d.toks[st-1].Text; prev == "." || prev == "->" || prev == "::" || prev == "?->" {
				continue
			}
		}
		if d.closer[st] {
			continue
		}
		n := 0
		total += m.steps
		m.steps = 0
		m.seq(0, st, nil, func(ci int, e sgEnv) bool {
			if ci <= st {
				return false
			}
			out = append(out, sgMatch{s: d.toks[st].Start, e: d.toks[ci-1].End, env: e})
			n++
			return n >= sgMaxPerStart || len(out) >= sgMaxMatches
		})
		if len(out) >= sgMaxMatches || total > sgMaxTotal {
			break
		}
	}
	return out
}

// seq matches elements pi.. at code token ci, calling k with each end;
// it returns true once k asks to stop.
func (m *sgMatcher) seq(pi, ci int, e sgEnv, k func(int, sgEnv) bool) bool {
	m.steps++
	if m.steps > sgMaxSteps {
		return true
	}
	el, d := m.p.el, m.d
	if pi == len(el) {
		return k(ci, e)
	}
	n := len(d.toks)
	x := el[pi]
	switch x.kind {
	case peEllipsis:
		if pi == len(el)-1 {
			// A trailing ... after a statement runs to the end of the
			// block; after an operator it is the rest of the expression.
			if pi > 0 && !x.nl && el[pi-1].kind == peLit && !el[pi-1].isStr && el[pi-1].text != ";" && el[pi-1].text != "}" {
				return k(d.exprEnd(ci), e)
			}
			return k(d.blockEnd(ci), e)
		}
		if nx := el[pi+1]; nx.kind == peLit && !nx.isStr && isClose(nx.text) {
			return m.seq(pi+1, d.blockEnd(ci), e, k)
		}
		return m.ellipsis(pi, ci, e, k)
	case peDeep:
		// The run is the rest of the block when a closer follows, else
		// one expression; P must match within it.
		end := d.exprEnd(ci)
		if pi+1 < len(el) && el[pi+1].kind == peLit && isClose(el[pi+1].text) {
			end = d.blockEnd(ci)
		}
		if end <= ci || !m.contains(x.sub, ci, end, e) {
			return false
		}
		return m.seq(pi+1, end, e, k)
	case peMeta:
		if b, ok := e[x.text]; ok {
			if b.isS || ci+len(b.toks) > n {
				return false
			}
			for i, s := range b.toks {
				if d.toks[ci+i].Text != s {
					return false
				}
			}
			return m.seq(pi+1, ci+len(b.toks), e, k)
		}
		if ci >= n || !m.metaStart(ci) {
			return false
		}
		j := ci
		for units := 0; units < sgMaxMetaLen && j < n && m.unitOK(ci, j); units++ {
			j = d.next(j)
			txt := make([]string, 0, j-ci)
			for _, t := range d.toks[ci:min(j, n)] {
				txt = append(txt, t.Text)
			}
			if prefixKeywords[txt[len(txt)-1]] { // "sizeof" of "sizeof *p" is no operand
				continue
			}
			// A metavariable ending the pattern binds a whole expression,
			// not a prefix of one ("function" of a function expression).
			if pi == len(el)-1 && j < n && !d.closer[j] && d.toks[j].Text != ";" && d.toks[j].Text != "," {
				continue
			}
			b := binding{toks: txt, s: d.toks[ci].Start, e: d.toks[min(j, n)-1].End}
			if m.seq(pi+1, j, e.with(x.text, b), k) {
				return true
			}
		}
		return false
	}
	if ci >= n {
		return false
	}
	t := d.toks[ci]
	switch x.kind {
	case peLit:
		// ", ..." just before a closer may match no arguments at all.
		if x.text == "," && !x.isStr && pi+2 < len(el) && el[pi+1].kind == peEllipsis &&
			el[pi+2].kind == peLit && isClose(el[pi+2].text) && d.closer[ci] && t.Text == el[pi+2].text {
			if m.seq(pi+2, ci, e, k) {
				return true
			}
		}
		if x.isStr {
			if t.Kind != tkString || t.Val != x.text || !quoteOK(x.quote, t.Quote) {
				return false
			}
		} else if t.Kind == tkString || t.Text != x.text || (isClose(x.text) && !d.closer[ci]) {
			return false
		}
		return m.seq(pi+1, ci+1, e, k)
	case peStrAny:
		if t.Kind != tkString || !quoteOK(x.quote, t.Quote) {
			return false
		}
		return m.seq(pi+1, ci+1, e, k)
	case peStrRe:
		if t.Kind != tkString || !quoteOK(x.quote, t.Quote) || !x.re.MatchString(t.Val) {
			return false
		}
		return m.seq(pi+1, ci+1, e, k)
	case peStrBind:
		if t.Kind != tkString || !quoteOK(x.quote, t.Quote) {
			return false
		}
		b := binding{toks: []string{t.Text}, s: t.Start + 1, e: max(t.Start+1, t.End-1), str: t.Val, isS: true}
		if old, ok := e[x.text]; ok {
			if old.key() != b.key() {
				return false
			}
			return m.seq(pi+1, ci+1, e, k)
		}
		return m.seq(pi+1, ci+1, e.with(x.text, b), k)
	case peTypedInt:
		j := ci
		if t.Text == "-" && j+1 < n {
			j++
		}
		if d.toks[j].Kind != tkNumber {
			return false
		}
		b := binding{toks: textsOf(d.toks[ci : j+1]), s: t.Start, e: d.toks[j].End}
		if old, ok := e[x.text]; ok && old.key() != b.key() {
			return false
		}
		return m.seq(pi+1, j+1, e.with(x.text, b), k)
	}
	return false
}

func textsOf(ts []sgToken) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Text
	}
	return out
}

// unitOK says whether the unit at j may extend a metavariable's run
// that began at ci. A { } block only may as a JavaScript function body
// (after "=>", or after the parameters of a run starting "function");
// "=>" itself only in JavaScript, where it makes an arrow function (in
// PHP it separates array keys from values).
func (m *sgMatcher) unitOK(ci, j int) bool {
	d := m.d
	if d.closer[j] {
		return false
	}
	t := d.toks[j]
	if t.Kind != tkPunct {
		return true
	}
	switch t.Text {
	case "{":
		if !d.js || j == ci {
			return false
		}
		head := d.toks[ci].Text
		return d.toks[j-1].Text == "=>" || (d.toks[j-1].Text == ")" && (head == "function" || head == "async"))
	case "=>":
		return d.js && j > ci
	}
	return !unitStops[t.Text]
}

// metaStart: a metavariable's expression begins with an operand, a
// keyword that starts expressions, or a prefix operator.
func (m *sgMatcher) metaStart(ci int) bool {
	t := m.d.toks[ci]
	if t.Kind == tkPunct {
		return exprStart[t.Text]
	}
	return !(t.Kind == tkIdent && sgKeywords[t.Text])
}

// contains says whether sub matches somewhere in tokens [from, to) with
// bindings consistent with e.
func (m *sgMatcher) contains(sub *sgPattern, from, to int, e sgEnv) bool {
	inner := &sgMatcher{p: sub, d: m.d}
	for st := from; st < to; st++ {
		inner.steps = 0
		found := false
		inner.seq(0, st, e, func(ci int, _ sgEnv) bool {
			found = ci > st && ci <= to
			return found
		})
		m.steps += inner.steps
		if found {
			return true
		}
	}
	return false
}

// ellipsis tries the rest of the pattern after skipping 0, 1, ...
// balanced units, and also inside each following { } block: semgrep's
// "foo(); ... bar();" finds bar() nested deeper than foo().
func (m *sgMatcher) ellipsis(pi, ci int, e sgEnv, k func(int, sgEnv) bool) bool {
	d, el := m.d, m.p.el
	n := len(d.toks)
	for j := ci; ; j = d.next(j) {
		if m.seq(pi+1, j, e, k) {
			return true
		}
		// "..., X" where the ellipsis matches nothing drops the comma.
		if j == ci && el[pi+1].kind == peLit && el[pi+1].text == "," && !el[pi+1].isStr {
			if m.seq(pi+2, j, e, k) {
				return true
			}
		}
		if j >= n || d.closer[j] {
			return false
		}
		if d.toks[j].Kind == tkPunct && d.toks[j].Text == "{" {
			if m.ellipsis(pi, j+1, e, k) {
				return true
			}
		}
	}
}

// regexMatches lists pattern-regex matches as spans (no bindings).
func regexMatches(re *regexp2.Regexp, d *sgDoc) []sgMatch {
	var out []sgMatch
	m, err := re.FindStringMatch(d.src)
	for err == nil && m != nil && len(out) < sgMaxMatches {
		i, n := m.ByteRange()
		out = append(out, sgMatch{s: i, e: i + n})
		m, err = re.FindNextMatch(m)
	}
	return out
}
