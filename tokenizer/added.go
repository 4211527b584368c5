package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text the way HF's AddedVocabulary
// does: leftmost match, longest token at that position, with the
// single_word, lstrip and rstrip flags applied.
type addedMatcher struct {
	toks  []addedToken
	pats  []string     // what is matched: the content, normalized for normalized tokens
	first [256][]int32 // token indices by first byte, longest pattern first
	n     int
}

func newAddedMatcher(toks []addedToken, pats []string) addedMatcher {
	m := addedMatcher{toks: toks, pats: pats}
	for i, p := range pats {
		if p == "" {
			continue
		}
		c := p[0]
		lst := append(m.first[c], int32(i))
		// Insertion keeps the list sorted by descending length, so the
		// first hit at a position is the longest one.
		for k := len(lst) - 1; k > 0 && len(pats[lst[k]]) > len(pats[lst[k-1]]); k-- {
			lst[k], lst[k-1] = lst[k-1], lst[k]
		}
		m.first[c] = lst
		m.n++
	}
	return m
}

// find returns the first match in s at or after from: the span to remove
// from the text [ms, me) (including stripped whitespace) and the token
// index, or idx -1.
func (m *addedMatcher) find(s string, from int) (ms, me, idx int) {
	if m.n == 0 {
		return 0, 0, -1
	}
	for i := from; i < len(s); i++ {
		cands := m.first[s[i]]
		if len(cands) == 0 {
			continue
		}
		for _, k := range cands {
			p := m.pats[k]
			if !strings.HasPrefix(s[i:], p) {
				continue
			}
			tok := m.toks[k]
			end := i + len(p)
			if tok.SingleWord && (isWordBefore(s, i) || isWordAfter(s, end)) {
				continue
			}
			ms, me = i, end
			if tok.LStrip {
				for ms > from {
					r, w := utf8.DecodeLastRuneInString(s[:ms])
					if !unicode.IsSpace(r) {
						break
					}
					ms -= w
				}
			}
			if tok.RStrip {
				for me < len(s) {
					r, w := utf8.DecodeRuneInString(s[me:])
					if !unicode.IsSpace(r) {
						break
					}
					me += w
				}
			}
			return ms, me, int(k)
		}
	}
	return 0, 0, -1
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func isWordBefore(s string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordChar(r)
}

func isWordAfter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isWordChar(r)
}
