package suite

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Token kinds of the semgrep-subset tokenizer.
const (
	tkIdent = iota
	tkNumber
	tkString // Text is the literal with its quotes; Val its content
	tkPunct
	tkMeta     // pattern only: $X
	tkEllipsis // ...
)

// sgToken is one token of code or of a pattern, with its byte span.
type sgToken struct {
	Kind       int
	Text, Val  string
	Quote      byte // string delimiter: ', " or `
	Start, End int
}

// operators, longest first, so that "=" never matches the start of "==".
var sgOps = []string{
	"<<=", ">>=", "===", "!==", "...", "**=", "??=", "?->", "<=>",
	"->", "::", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=", "/=",
	"%=", "&=", "|=", "^=", "<<", ">>", "=>", "??", ".=",
}

func isIdentStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return isIdentStart(r) || unicode.IsDigit(r) }

// isMetaName says whether an identifier is a semgrep metavariable ($X,
// $FUNC, $_1): a dollar then capitals, digits and underscores.
func isMetaName(s string) bool {
	if len(s) < 2 || s[0] != '$' {
		return false
	}
	for _, r := range s[1:] {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// sgTokenize splits C-like, Java, JavaScript or PHP source into tokens,
// dropping comments ("#" starts one in PHP only, where it is not "#[").
// With pattern set, $CAPS identifiers become metavariables. It never
// fails: an unterminated string or comment runs to the end.
func sgTokenize(src, lang string, pattern bool) []sgToken {
	var toks []sgToken
	php := lang == "php"
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case strings.HasPrefix(src[i:], "//") || (php && c == '#' && !strings.HasPrefix(src[i:], "#[")):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				return toks
			}
			i += j + 1
			continue
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return toks
			}
			i += j + 4
			continue
		case c == '"' || c == '\'' || c == '`':
			// Outside PHP a quoted string ends at the line's end: a stray
			// quote (a JS regex literal, a C char in a macro) then spoils
			// one line, not the rest of the file.
			oneLine := !php && c != '`'
			j := i + 1
			for j < len(src) && src[j] != c && !(oneLine && src[j] == '\n') {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			val := src[i+1 : min(j, len(src))]
			if j < len(src) && src[j] == '\n' {
				j-- // keep the newline out of the token
			}
			end := min(j+1, len(src))
			toks = append(toks, sgToken{Kind: tkString, Text: src[i:end], Val: val, Quote: c, Start: i, End: end})
			i = end
			continue
		}
		r, w := utf8.DecodeRuneInString(src[i:])
		switch {
		case isIdentStart(r):
			j := i + w
			for j < len(src) {
				r2, w2 := utf8.DecodeRuneInString(src[j:])
				if !isIdentPart(r2) {
					break
				}
				j += w2
			}
			k := tkIdent
			if pattern && isMetaName(src[i:j]) {
				k = tkMeta
			}
			toks = append(toks, sgToken{Kind: k, Text: src[i:j], Start: i, End: j})
			i = j
		case unicode.IsDigit(r):
			j := i + 1
			for j < len(src) && (isIdentPart(rune(src[j])) || src[j] == '.') {
				j++
			}
			toks = append(toks, sgToken{Kind: tkNumber, Text: src[i:j], Start: i, End: j})
			i = j
		default:
			op := string(src[i : i+w])
			for _, o := range sgOps {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			k := tkPunct
			if op == "..." {
				k = tkEllipsis
			}
			toks = append(toks, sgToken{Kind: k, Text: op, Start: i, End: i + len(op)})
			i += len(op)
		}
	}
	return toks
}

// sgDoc is tokenized code with its bracket structure: close[i] is the
// index of the bracket closing an opening bracket at i (len(toks) when
// the code ends first: answers are often cut off); closer[i] marks a
// closing bracket that matched. Unmatched closers are plain tokens.
type sgDoc struct {
	src    string
	toks   []sgToken
	close  []int
	closer []bool
	js     bool // JavaScript/TypeScript: "=>" builds arrow functions
}

func isOpen(s string) bool  { return s == "(" || s == "[" || s == "{" }
func isClose(s string) bool { return s == ")" || s == "]" || s == "}" }

func newSgDoc(src, lang string) *sgDoc {
	d := &sgDoc{src: src, toks: sgTokenize(src, lang, false), js: lang == "javascript" || lang == "typescript"}
	n := len(d.toks)
	d.close = make([]int, n)
	d.closer = make([]bool, n)
	var stack []int
	pair := map[string]string{")": "(", "]": "[", "}": "{"}
	for i, t := range d.toks {
		d.close[i] = -1
		if t.Kind != tkPunct {
			continue
		}
		if isOpen(t.Text) {
			stack = append(stack, i)
			continue
		}
		if isClose(t.Text) {
			// Pop to the matching opener, leaving skipped openers
			// unclosed (they then run to the end).
			for k := len(stack) - 1; k >= 0; k-- {
				if d.toks[stack[k]].Text == pair[t.Text] {
					for _, o := range stack[k+1:] {
						d.close[o] = n
					}
					d.close[stack[k]] = i
					d.closer[i] = true
					stack = stack[:k]
					break
				}
			}
		}
	}
	for _, o := range stack {
		d.close[o] = n
	}
	return d
}

// next is the index after the balanced unit starting at i: one token, or
// a bracketed group through its closer.
func (d *sgDoc) next(i int) int {
	if d.close[i] >= 0 {
		if d.close[i] >= len(d.toks) {
			return len(d.toks)
		}
		return d.close[i] + 1
	}
	return i + 1
}

// blockEnd is the index of the closer of the block around i (or the end).
func (d *sgDoc) blockEnd(i int) int {
	for i < len(d.toks) && !d.closer[i] {
		i = d.next(i)
	}
	return i
}

// exprEnd is the index after the expression starting at i: it stops at
// a statement or argument separator or the enclosing closer.
func (d *sgDoc) exprEnd(i int) int {
	for i < len(d.toks) && !d.closer[i] && !(d.toks[i].Kind == tkPunct && (d.toks[i].Text == ";" || d.toks[i].Text == ",")) {
		i = d.next(i)
	}
	return i
}
