package tokenizer

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// The pre-tokenizer regexes of the byte-level families this package
// recognises. They get hand-written splitters: regexp2 (needed for the
// `\s+(?!\S)` lookahead) runs these patterns at a few MB/s, below what
// training-data tokenization needs. Other patterns fall back to regexp2.
const (
	// patternQwen2 is used by Qwen2, Qwen2.5 and Qwen3.
	patternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternLlama3 differs from Qwen's only in grouping up to three digits.
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// patternGPT2 is the one a ByteLevel pre-tokenizer applies with use_regex.
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// splitter cuts s into consecutive non-empty pieces covering all of s
// (HF's Split with the "Isolated" behaviour), appending [start, end) pairs.
type splitter interface {
	split(s string, dst [][2]int) ([][2]int, error)
}

func newSplitter(pattern string, literal bool) (splitter, error) {
	if !literal {
		switch pattern {
		case patternQwen2:
			return handSplitter{kind: splitQwen, maxDigits: 1}, nil
		case patternLlama3:
			return handSplitter{kind: splitQwen, maxDigits: 3}, nil
		case patternGPT2:
			return handSplitter{kind: splitGPT2}, nil
		}
	}
	return newRegexSplitter(pattern, literal)
}

type splitKind uint8

const (
	splitQwen splitKind = iota
	splitGPT2
)

// handSplitter reproduces Oniguruma's leftmost-first matching of the three
// known patterns; splitter_test.go checks it against regexp2.
type handSplitter struct {
	kind      splitKind
	maxDigits int
}

func (h handSplitter) split(s string, dst [][2]int) ([][2]int, error) {
	for i := 0; i < len(s); {
		j := h.next(s, i)
		dst = append(dst, [2]int{i, j})
		i = j
	}
	return dst, nil
}

// next returns the end of the piece that starts at s[i].
func (h handSplitter) next(s string, i int) int {
	if h.kind == splitQwen {
		return h.nextQwen(s, i)
	}
	return nextGPT2(s, i)
}

func decodeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// Character classes as Oniguruma defines them for Unicode text. Invalid
// UTF-8 decodes to U+FFFD, a symbol, which is what HF sees after its lossy
// conversion to a Rust string.
func isLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z'
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}

func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.IsSpace(r)
}

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

func scanLetters(s string, j int) int {
	for j < len(s) {
		r, w := decodeAt(s, j)
		if !isLetter(r) {
			break
		}
		j += w
	}
	return j
}

func scanOther(s string, j int) int {
	for j < len(s) {
		r, w := decodeAt(s, j)
		if !isOther(r) {
			break
		}
		j += w
	}
	return j
}

// contraction returns the byte length of a contraction suffix ('s, 't, 're,
// 've, 'm, 'll, 'd) at s[i], which holds the apostrophe, or 0. With fold,
// letters match case-insensitively under Unicode case folding, as
// Oniguruma's (?i) does (so U+017F LONG S matches 's').
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	c := lower(s[i+1])
	switch c {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			want := byte('e')
			if c == 'l' {
				want = 'l'
			}
			if lower(s[i+2]) == want {
				return 3
			}
		}
	case 0xC5: // U+017F is C5 BF
		if fold && i+2 < len(s) && s[i+2] == 0xBF {
			return 3
		}
	}
	return 0
}

// nextQwen returns the end of the piece starting at i for patternQwen2 (and
// patternLlama3), trying the alternatives in pattern order.
func (h handSplitter) nextQwen(s string, i int) int {
	r, w := decodeAt(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		if n := contraction(s, i, true); n > 0 {
			return i + n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isLetter(r) {
		return scanLetters(s, i+w)
	}
	if r != '\r' && r != '\n' && !isNumber(r) && i+w < len(s) {
		if r2, w2 := decodeAt(s, i+w); isLetter(r2) {
			return scanLetters(s, i+w+w2)
		}
	}
	// \p{N} or \p{N}{1,3}
	if isNumber(r) {
		j := i + w
		for k := 1; k < h.maxDigits && j < len(s); k++ {
			r2, w2 := decodeAt(s, j)
			if !isNumber(r2) {
				break
			}
			j += w2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if r == ' ' {
		j++
	}
	if j < len(s) {
		if rj, wj := decodeAt(s, j); isOther(rj) {
			j = scanOther(s, j+wj)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			return j
		}
	}
	// Only whitespace remains possible here.
	return nextSpace(s, i, true)
}

// nextSpace handles the whitespace alternatives: with newlines,
// `\s*[\r\n]+` (which ends right after the run's last newline), then
// `\s+(?!\S)` (the run minus its last character when text follows, so that
// character can lead the next word), then `\s+`.
func nextSpace(s string, i int, newlines bool) int {
	e, lastNL, lastStart := i, -1, i
	for e < len(s) {
		r, w := decodeAt(s, e)
		if !isSpace(r) {
			break
		}
		if r == '\r' || r == '\n' {
			lastNL = e
		}
		lastStart = e
		e += w
	}
	if e == i {
		// Not whitespace at all: cannot happen for the known patterns, but
		// keep the split total so a caller never loops forever.
		_, w := decodeAt(s, i)
		return i + w
	}
	if newlines && lastNL >= 0 {
		return lastNL + 1
	}
	if e == len(s) || lastStart == i {
		return e
	}
	return lastStart
}

// nextGPT2 is patternGPT2: case-sensitive contractions, then
// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` and the whitespace rules.
func nextGPT2(s string, i int) int {
	r, w := decodeAt(s, i)
	if r == '\'' {
		if n := contraction(s, i, false); n > 0 {
			return i + n
		}
	}
	j, rj, wj := i, r, w
	if r == ' ' && i+1 < len(s) {
		j = i + 1
		rj, wj = decodeAt(s, j)
	}
	switch {
	case isLetter(rj):
		return scanLetters(s, j+wj)
	case isNumber(rj):
		j += wj
		for j < len(s) {
			r2, w2 := decodeAt(s, j)
			if !isNumber(r2) {
				break
			}
			j += w2
		}
		return j
	case isOther(rj):
		return scanOther(s, j+wj)
	}
	return nextSpace(s, i, false)
}

// regexSplitter runs an arbitrary pattern with regexp2 (Perl-style
// leftmost-first semantics and lookaround, like Oniguruma). Unmatched gaps
// become pieces of their own, as in HF's Isolated behaviour.
type regexSplitter struct {
	re *regexp2.Regexp
}

func newRegexSplitter(pattern string, literal bool) (splitter, error) {
	if literal {
		pattern = regexp2.Escape(pattern)
	}
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("compile Split pattern %q: %w", pattern, err)
	}
	return regexSplitter{re: re}, nil
}

func (r regexSplitter) split(s string, dst [][2]int) ([][2]int, error) {
	ms, err := r.re.FindAllStringIndex(s, -1)
	if err != nil {
		return dst, fmt.Errorf("split with %q: %w", r.re.String(), err)
	}
	prev := 0
	for _, m := range ms {
		if m[0] == m[1] {
			continue
		}
		if m[0] > prev {
			dst = append(dst, [2]int{prev, m[0]})
		}
		dst = append(dst, [2]int{m[0], m[1]})
		prev = m[1]
	}
	if prev < len(s) {
		dst = append(dst, [2]int{prev, len(s)})
	}
	return dst, nil
}
