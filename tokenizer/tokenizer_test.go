package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// trainedJSON trains once per test binary: the tokenizer the tests below
// build variants of.
var trainedJSON = sync.OnceValues(func() ([]byte, error) {
	docs := []string{
		"func main() {\n\tfmt.Println(\"hello, world\")\n}\n",
		"def f(x):\n    return x * 2  # double\n\n\n",
		"The quick brown fox's tail; they'll see it. 12345 + 678 = 13023",
		"Grüße, naïve café — 東京 😀 \u00a0 \r\n",
	}
	for i := range 50 {
		docs = append(docs, fmt.Sprintf("for i := 0; i < %d; i++ { total += values[i] * %d }\n", i, i*7))
	}
	return Train(docs, 600, trainSpecial)
})

// variant returns the trained tokenizer.json with fields replaced.
func variant(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	data, err := trainedJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseOrFatal(t *testing.T, data []byte) *Tokenizer {
	t.Helper()
	tk, err := Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestUnsupportedComponents(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"WordPiece model", func(m map[string]any) { m["model"].(map[string]any)["type"] = "WordPiece" }, `model: unsupported type "WordPiece"`},
		{"Metaspace", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁"}
		}, `pre_tokenizer: unsupported type "Metaspace"`},
		{"nested Metaspace", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "ByteLevel"}, map[string]any{"type": "Metaspace"}}}
		}, `pre_tokenizer Sequence[1]: pre_tokenizer: unsupported type "Metaspace"`},
		{"Lowercase normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }, `normalizer: unsupported type "Lowercase"`},
		{"WordPiece decoder", func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }, `decoder: unsupported type "WordPiece"`},
		{"no ByteLevel", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "Isolated"}
		}, "no ByteLevel pre-tokenizer"},
		{"Split behavior", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "MergedWithNext"},
				map[string]any{"type": "ByteLevel"}}}
		}, `unsupported behavior "MergedWithNext"`},
		{"byte_fallback", func(m map[string]any) { m["model"].(map[string]any)["byte_fallback"] = true }, "byte_fallback"},
		{"post processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "Frobnicate"} }, `post_processor: unsupported type "Frobnicate"`},
		{"bad merge", func(m map[string]any) {
			mm := m["model"].(map[string]any)
			mm["merges"] = append(mm["merges"].([]any), "Ġ nosuchtoken")
		}, "is not in the vocab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(variant(t, tc.edit), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// pieceOf reports, for a splitter, which piece each byte belongs to.
func pieceOf(sp splitter, s string) []int {
	spans, _ := sp.split(s, nil)
	owner := make([]int, len(s))
	for k, p := range spans {
		for i := p[0]; i < p[1]; i++ {
			owner[i] = k
		}
	}
	return owner
}

func TestByteLevelVariants(t *testing.T) {
	text := "Don't stop: 12345 apples,  naïve\tcafé!!\n\n  x = y + 1 // ok\n"
	gpt2 := parseOrFatal(t, variant(t, func(m map[string]any) {
		m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true}
	}))
	llama := parseOrFatal(t, variant(t, func(m map[string]any) {
		pre := m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)
		pre[0].(map[string]any)["pattern"] = map[string]any{"Regex": patternLlama3}
	}))
	for _, tc := range []struct {
		name    string
		tk      *Tokenizer
		pattern string
	}{{"gpt2", gpt2, patternGPT2}, {"llama3", llama, patternLlama3}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.tk.Decode(tc.tk.Encode(text), false); got != norm.NFC.String(text) {
				t.Fatalf("round trip %q", got)
			}
			sp, _ := newSplitter(tc.pattern, false)
			owner := pieceOf(sp, text)
			_, offs := tc.tk.EncodeWithOffsets(text)
			for _, o := range offs {
				if owner[o[0]] != owner[o[1]-1] {
					t.Fatalf("token %v = %q crosses a pre-token boundary", o, text[o[0]:o[1]])
				}
			}
		})
	}
	// Llama-3 groups digits by three, Qwen splits each digit.
	if n := len(llama.Encode("12345")); n < 2 || n > 5 {
		t.Errorf("llama3 12345 -> %d tokens", n)
	}

	t.Run("prefix space", func(t *testing.T) {
		ps := parseOrFatal(t, variant(t, func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true}
		}))
		ids, offs := ps.EncodeWithOffsets("for total")
		want := gpt2.Encode(" for total")
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("add_prefix_space: %v, want %v", ids, want)
		}
		if offs[0][0] != 0 || offs[len(offs)-1][1] != len("for total") {
			t.Errorf("offsets %v should span the original text", offs)
		}
	})

	t.Run("ignore_merges", func(t *testing.T) {
		// "zq" is in the vocab without a merge producing it: only with
		// ignore_merges is it used for the pre-token "zq".
		add := func(ignore bool) *Tokenizer {
			return parseOrFatal(t, variant(t, func(m map[string]any) {
				mm := m["model"].(map[string]any)
				mm["vocab"].(map[string]any)["zq"] = 5000
				mm["ignore_merges"] = ignore
			}))
		}
		if ids := add(true).Encode("zq"); fmt.Sprint(ids) != "[5000]" {
			t.Errorf("ignore_merges: %v, want [5000]", ids)
		}
		if ids := add(false).Encode("zq"); len(ids) != 2 {
			t.Errorf("without ignore_merges: %v, want the two byte tokens", ids)
		}
	})
}

func TestAddedTokenFlags(t *testing.T) {
	tk := parseOrFatal(t, variant(t, func(m map[string]any) {
		m["added_tokens"] = append(m["added_tokens"].([]any),
			map[string]any{"id": 700, "content": "<L>", "lstrip": true, "special": true},
			map[string]any{"id": 701, "content": "<R>", "rstrip": true, "special": false},
			map[string]any{"id": 702, "content": "word", "single_word": true},
			map[string]any{"id": 703, "content": "<LONGER>", "special": true},
			map[string]any{"id": 704, "content": "<LONG", "special": true},
			map[string]any{"id": 705, "content": "e\u0301!", "normalized": true},
		)
	}))
	id := func(content string) int {
		v, ok := tk.TokenID(content)
		if !ok {
			t.Fatalf("added token %q missing", content)
		}
		return v
	}
	// HF renumbers added tokens after the vocab, whatever their written id.
	if got, want := id("<L>"), len(tk.vocab)+len(trainSpecial); got != want {
		t.Errorf("id of the first new added token = %d, want %d (HF's numbering)", got, want)
	}
	enc := func(s string) []int { return tk.Encode(s) }
	a := enc("a")[0]
	if got := enc("a  <L>a"); fmt.Sprint(got) != fmt.Sprint([]int{a, id("<L>"), a}) {
		t.Errorf("lstrip: %v", got)
	}
	if got := enc("a<R>  a"); fmt.Sprint(got) != fmt.Sprint([]int{a, id("<R>"), a}) {
		t.Errorf("rstrip: %v", got)
	}
	if got := enc("a word a"); !containsInt(got, id("word")) {
		t.Errorf("single_word standalone not matched: %v", got)
	}
	if got := enc("swordfish"); containsInt(got, id("word")) {
		t.Errorf("single_word matched inside a word: %v", got)
	}
	if got := enc("x<LONGER>"); fmt.Sprint(got[1:]) != fmt.Sprint([]int{id("<LONGER>")}) {
		t.Errorf("longest match: %v", got)
	}
	// Normalized added tokens match after NFC: "é!" written decomposed.
	if got := enc("xe\u0301!"); !containsInt(got, id("e\u0301!")) {
		t.Errorf("normalized added token not matched: %v", got)
	}
	if got := tk.Decode([]int{a, id("<L>"), id("<R>"), a}, true); got != "a<R>a" {
		t.Errorf("skip special decode = %q", got)
	}
	ids, offs := tk.EncodeWithOffsets("a  <L>a")
	if len(ids) != 3 || offs[1] != [2]int{1, 6} {
		t.Errorf("lstrip offsets %v", offs)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestOffsetsCoverText(t *testing.T) {
	data, err := trainedJSON()
	if err != nil {
		t.Fatal(err)
	}
	tk := parseOrFatal(t, data)
	text := "naïve e\u0301 café\n\tfor i := 0 {}<|im_end|>x 😀"
	ids, offs := tk.EncodeWithOffsets(text)
	if len(ids) != len(offs) {
		t.Fatalf("%d ids, %d offsets", len(ids), len(offs))
	}
	checkOffsets(t, text, offs)
	// Outside the normalized "e\u0301", a token holding whole characters
	// covers exactly its own text. (Tokens holding part of a character
	// cover the whole character when the chunk needed normalizing.)
	k := strings.Index(text, "e\u0301")
	for i, o := range offs {
		got := tk.Decode(ids[i:i+1], false)
		if (o[1] <= k || o[0] >= k+3) && !strings.ContainsRune(got, utf8.RuneError) && got != text[o[0]:o[1]] {
			t.Errorf("token %d decodes to %q but covers %q", i, got, text[o[0]:o[1]])
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	data, err := trainedJSON()
	if err != nil {
		t.Fatal(err)
	}
	tk := parseOrFatal(t, data)
	texts := []string{"func main() { return 1 }", "naïve café 😀", "  \n\n\t x", strings.Repeat("abc ", 300)}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = parseOrFatal(t, data).Encode(s)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 50 {
				i := (g + r) % len(texts)
				if got := tk.Encode(texts[i]); fmt.Sprint(got) != fmt.Sprint(want[i]) {
					errs <- fmt.Sprintf("goroutine %d: %q -> %v, want %v", g, texts[i], got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestEncodeLinear compares elementary operation counts (pre-tokens, pair
// look-ups, heap steps) of a 1 MB input and its 100 KB prefix, for
// source code and for single huge pre-tokens that take the heap path.
func TestEncodeLinear(t *testing.T) {
	data, err := trainedJSON()
	if err != nil {
		t.Fatal(err)
	}
	code := codeCorpus(t, 1<<20)
	inputs := map[string]string{
		"code":       code,
		"one word":   strings.Repeat("abcdefghij", 1<<20/10),
		"whitespace": strings.Repeat(" ", 1<<20),
		"digits":     strings.Repeat("1234567890", 1<<20/10),
	}
	for name, big := range inputs {
		tk := parseOrFatal(t, data)
		tk.cache = nil // count the BPE work itself, not cache hits
		_, _, small := tk.encode(big[:100<<10], false)
		_, _, large := tk.encode(big, false)
		ratio := float64(large) / float64(small)
		t.Logf("%s: %d ops for 100 KB, %d for 1 MB (%.2fx)", name, small, large, ratio)
		if ratio >= 12 {
			t.Errorf("%s: 1 MB takes %.1fx the operations of 100 KB, want < 12x", name, ratio)
		}
	}
}

// TestLossyUTF8 pins Rust's from_utf8_lossy: one U+FFFD per maximal
// invalid subpart.
func TestLossyUTF8(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe2\x82A", "\uFFFDA"},               // truncated 3-byte sequence: one replacement
		{"\xf0\x80\x80", "\uFFFD\uFFFD\uFFFD"}, // overlong lead: each byte alone
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate
		{"\xf4\x8f\xbf", "\uFFFD"},             // truncated valid prefix of U+10FFFF
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"é\xc3", "é\uFFFD"},
	} {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
