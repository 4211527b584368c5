package tokenizer

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var trainSpecial = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// trainCorpus is real source text split into documents, plus a few
// multilingual and whitespace-heavy ones.
func trainCorpus(tb testing.TB, n int) []string {
	tb.Helper()
	src := codeCorpus(tb, n)
	docs := strings.SplitAfter(src, "\n}\n")
	return append(docs,
		"Grüße aus Köln — naïve café, 東京は晴れ、مرحبا بالعالم 😀",
		"e\u0301 not yet composed, ſ long s, tabs\t\tand\r\nCRLF   \n\n\n",
		"x<|im_end|>y<|endoftext|>",
	)
}

func trainSmall(tb testing.TB, vocab int) (*Tokenizer, []byte, []string) {
	tb.Helper()
	docs := trainCorpus(tb, 200_000)
	data, err := Train(docs, vocab, trainSpecial)
	if err != nil {
		tb.Fatal(err)
	}
	tk, err := Parse(data, nil)
	if err != nil {
		tb.Fatalf("trained tokenizer does not load: %v", err)
	}
	return tk, data, docs
}

func TestTrainRoundTrip(t *testing.T) {
	tk, data, docs := trainSmall(t, 1000)
	if got := tk.VocabSize(); got != 1000 {
		t.Errorf("VocabSize = %d, want 1000", got)
	}
	total, ntok := 0, 0
	for i, d := range docs {
		ids := tk.Encode(d)
		if got, want := tk.Decode(ids, false), norm.NFC.String(d); got != want {
			t.Fatalf("doc %d does not round-trip:\n got %q\nwant %q", i, got, want)
		}
		total += len(d)
		ntok += len(ids)
	}
	// 744 learned merges on source code must at least halve the length.
	if ntok*2 > total {
		t.Errorf("%d bytes -> %d tokens: the merges compress less than 2x", total, ntok)
	}
	for _, s := range trainSpecial {
		id, ok := tk.TokenID(s)
		if !ok || !tk.IsSpecial(id) {
			t.Fatalf("special token %q: id %d ok %v special %v", s, id, ok, tk.IsSpecial(id))
		}
		if ids := tk.Encode("a" + s + "b"); len(ids) != 3 || ids[1] != id {
			t.Errorf("Encode(a%sb) = %v, want the special id %d in the middle", s, ids, id)
		}
	}
	again, err := Train(docs, 1000, trainSpecial)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Error("training twice on the same corpus gave different tokenizer.json")
	}
}

// TestTrainMergeOrder checks the tie rule and the count rule on a corpus
// small enough to work out by hand: "ab" occurs 3 times, "cd" 3 times and
// "xy" once, so the first merges are (a,b) then (c,d) (equal counts, smaller
// ids first), then "abcd"-level merges, never "xy" before them.
func TestTrainMergeOrder(t *testing.T) {
	data, err := Train([]string{"abcd abcd abcd xy"}, 256+3, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ab", "cd", "abcd"} {
		if _, ok := tk.TokenID(w); !ok {
			t.Errorf("token %q was not learned", w)
		}
	}
	if _, ok := tk.TokenID("xy"); ok {
		t.Error("rare pair xy merged before frequent ones")
	}
	ab, _ := tk.TokenID("ab")
	cd, _ := tk.TokenID("cd")
	if ab != 256 || cd != 257 {
		t.Errorf("ids ab=%d cd=%d, want 256 and 257 (tie broken by smaller pair)", ab, cd)
	}
}

func TestTrainErrors(t *testing.T) {
	if _, err := Train([]string{"x"}, 100, nil); err == nil {
		t.Error("vocab below 256 accepted")
	}
	if _, err := Train([]string{"x"}, 300, []string{"<a>", "<a>"}); err == nil {
		t.Error("repeated special token accepted")
	}
	// A corpus too small to fill the vocab stops early but stays valid.
	data, err := Train([]string{"ab"}, 5000, []string{"<s>"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tk.VocabSize() != 256+1+1 {
		t.Errorf("VocabSize = %d, want 258 (bytes, one merge, one special)", tk.VocabSize())
	}
	if got := tk.Decode(tk.Encode("ab<s>"), false); got != "ab<s>" || !utf8.ValidString(got) {
		t.Errorf("round trip = %q", got)
	}
}

func BenchmarkTrain(b *testing.B) {
	docs := trainCorpus(b, 2<<20)
	b.SetBytes(2 << 20)
	for b.Loop() {
		if _, err := Train(docs, 8000, trainSpecial); err != nil {
			b.Fatal(err)
		}
	}
}
