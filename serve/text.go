package serve

import (
	"strings"
	"unicode/utf8"

	"purpcode/tokenizer"
)

// textStream turns one sample's tokens into the text a client sees, as
// they arrive: special tokens are skipped, a character split across tokens
// is shown once complete, and the text ends before the first stop string
// (OpenAI's rule: the stop sequence is not returned). While the sample
// runs, the last bytes that could still begin a stop string are held back,
// so a streamed client never sees text that the final answer drops.
type textStream struct {
	tok     *tokenizer.Tokenizer
	stops   []string
	hold    int // longest stop string minus one byte
	pending []int
	text    strings.Builder
	ids     []int
	ends    []int // per token: length of text once the token is shown
	cut     int   // end of the answer once a stop string was found, else -1
}

func newTextStream(tok *tokenizer.Tokenizer, stops []string) *textStream {
	t := &textStream{tok: tok, stops: stops, cut: -1}
	for _, s := range stops {
		t.hold = max(t.hold, len(s)-1)
	}
	return t
}

// push adds tokens; final marks the sample's last ones.
func (t *textStream) push(ids []int, final bool) {
	for _, id := range ids {
		t.ids = append(t.ids, id)
		t.pending = append(t.pending, id)
		s := t.tok.Decode(t.pending, true)
		// U+FFFD at the end is (most likely) a character whose remaining
		// bytes are in the next token; wait for them.
		if strings.HasSuffix(s, "\uFFFD") {
			t.ends = append(t.ends, -1)
			continue
		}
		t.commit(s)
	}
	if final && len(t.pending) > 0 {
		t.commit(t.tok.Decode(t.pending, true))
	}
	if t.cut < 0 {
		t.findStop()
	}
}

// commit shows the pending tokens' text: all of them end where it ends.
func (t *textStream) commit(s string) {
	t.text.WriteString(s)
	for len(t.ends) < len(t.ids) {
		t.ends = append(t.ends, -1)
	}
	n := t.text.Len()
	for i := len(t.ids) - len(t.pending); i < len(t.ids); i++ {
		t.ends[i] = n
	}
	t.pending = t.pending[:0]
}

func (t *textStream) findStop() {
	full := t.text.String()
	best := -1
	for _, s := range t.stops {
		if i := strings.Index(full, s); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	t.cut = best
}

// visible is the end of the text that may be shown now: all of it once
// the sample is done (up to a stop string), else what no stop string can
// still claim, on a character boundary.
func (t *textStream) visible(done bool) int {
	full := t.text.String()
	if t.cut >= 0 {
		return t.cut
	}
	if done {
		return len(full)
	}
	end := max(0, len(full)-t.hold)
	for end > 0 && end < len(full) && !utf8.RuneStart(full[end]) {
		end--
	}
	return end
}

// answer is the final text.
func (t *textStream) answer() string { return t.text.String()[:t.visible(true)] }

// tokensUpTo is the number of leading tokens whose text lies within the
// first end bytes (a token still waiting for the rest of a character
// counts as not shown).
func (t *textStream) tokensUpTo(end int) int {
	k := 0
	for k < len(t.ends) && t.ends[k] >= 0 && t.ends[k] <= end {
		k++
	}
	return k
}
