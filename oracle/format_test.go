package oracle

import (
	"math/rand"
	"strings"
	"testing"
)

const (
	analysis16 = "The user wants a helper that adds numbers."
	answer8    = "Here is the function."
)

func TestCheckFormat(t *testing.T) {
	opt := DefaultFormatOptions()
	rep := strings.Repeat("0123456789abcdefghijklmnopqrstuv", 8) // 32 chars x 8
	cases := []struct {
		name   string
		text   string
		full   bool
		ok     bool
		reason string // substring of the reason when !ok
		answer string
	}{
		{name: "well formed", text: analysis16 + "\n## Answer\n" + answer8, ok: true, answer: answer8},
		{name: "surrounding white space", text: "\n  " + analysis16 + "\n## Answer\n" + answer8 + "\n\n", ok: true, answer: answer8},
		{name: "header repeated by the model", text: "## Analysis\n" + analysis16 + "\n## Answer\n" + answer8, ok: true, answer: answer8},
		{name: "full text mode", full: true, text: "## Analysis\n" + analysis16 + "\n## Answer\n" + answer8, ok: true, answer: answer8},
		{name: "full text mode without header", full: true, text: analysis16 + "\n## Answer\n" + answer8, reason: "Analysis"},
		{name: "missing answer header", text: analysis16 + "\n" + answer8, reason: "missing"},
		{name: "answer header without newline after", text: analysis16 + "\n## Answer " + answer8, reason: "missing"},
		{name: "answer header at the start", text: "## Answer\n" + answer8, reason: "missing"},
		{name: "missing analysis", text: "\n## Answer\n" + answer8 + " and more text", reason: "missing"},
		{name: "analysis of 15 characters", text: "fifteen chars!!\n## Answer\n" + answer8, reason: "analysis shorter than 16"},
		{name: "analysis of exactly 16 characters", text: "sixteen chars!!!\n## Answer\n" + answer8, ok: true, answer: answer8},
		{name: "analysis counts characters not bytes", text: strings.Repeat("é", 16) + "\n## Answer\n" + answer8, ok: true, answer: answer8},
		{name: "answer of 7 characters", text: analysis16 + "\n## Answer\nseven!!", reason: "answer shorter than 8"},
		{name: "answer of exactly 8 characters", text: analysis16 + "\n## Answer\neight!!!", ok: true, answer: "eight!!!"},
		{name: "empty answer", text: analysis16 + "\n## Answer\n", reason: "missing"},
		{name: "later header satisfies the lengths", text: "short\n## Answer\n" + analysis16 + "\n## Answer\n" + answer8, ok: true,
			answer: analysis16 + "\n## Answer\n" + answer8},
		{name: "repetition 8 times", text: analysis16 + "\n## Answer\n" + rep, reason: "repetition"},
		{name: "repetition 7 times passes", text: analysis16 + "\n## Answer\n" + rep[32:], ok: true, answer: rep[32:]},
		{name: "repetition in the analysis", text: rep + "\n## Answer\n" + answer8, reason: "repetition"},
		{name: "overlapping repetition", text: analysis16 + "\n## Answer\n" + strings.Repeat("a", 39), reason: "repetition"},
		{name: "overlapping 7 times passes", text: analysis16 + "\n## Answer\n" + strings.Repeat("a", 38), ok: true, answer: strings.Repeat("a", 38)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opt
			o.FullText = c.full
			got := CheckFormat(c.text, o)
			if got.OK != c.ok {
				t.Fatalf("OK = %v (%s), want %v", got.OK, got.Reason, c.ok)
			}
			if !c.ok && !strings.Contains(got.Reason, c.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, c.reason)
			}
			if c.ok && got.Answer != c.answer {
				t.Errorf("answer = %q, want %q", got.Answer, c.answer)
			}
		})
	}
}

func TestCheckFormatOptions(t *testing.T) {
	o := FormatOptions{MinAnalysis: 1, MinAnswer: 1, RepeatLen: 4, RepeatCount: 3}
	if r := CheckFormat("a\n## Answer\nb", o); !r.OK {
		t.Errorf("min lengths 1: %s", r.Reason)
	}
	if r := CheckFormat("abcd abcd abcd\n## Answer\nb", o); r.OK {
		t.Error("4-char window 3 times passed")
	}
}

// naiveRepetition counts every window; the reference for FindRepetition.
func naiveRepetition(s string, n, k int) bool {
	r := []rune(s)
	counts := map[string]int{}
	for i := 0; i+n <= len(r); i++ {
		w := string(r[i : i+n])
		counts[w]++
		if counts[w] >= k {
			return true
		}
	}
	return false
}

func TestFindRepetitionMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabets := []string{"ab", "abc", "aé☃", "abcdefghij"}
	for trial := 0; trial < 3000; trial++ {
		alpha := []rune(alphabets[trial%len(alphabets)])
		l := rng.Intn(120)
		var b strings.Builder
		for i := 0; i < l; i++ {
			b.WriteRune(alpha[rng.Intn(len(alpha))])
		}
		s := b.String()
		n, k := 1+rng.Intn(6), 2+rng.Intn(6)
		sub, cnt := FindRepetition(s, n, k)
		want := naiveRepetition(s, n, k)
		if (cnt > 0) != want {
			t.Fatalf("FindRepetition(%q, %d, %d) = %q,%d; naive says %v", s, n, k, sub, cnt, want)
		}
		if cnt > 0 && (strings.Count(s, sub) == 0 || len([]rune(sub)) != n) {
			t.Fatalf("reported window %q not a %d-char substring of %q", sub, n, s)
		}
	}
}

func FuzzFindRepetition(f *testing.F) {
	f.Add("aaaaaaaaaaaa", 3, 4)
	f.Add("abcabcabcabc", 3, 4)
	f.Add("ééééé☃☃☃☃", 2, 3)
	f.Fuzz(func(t *testing.T, s string, n, k int) {
		n, k = 1+abs(n)%8, 2+abs(k)%6
		_, cnt := FindRepetition(s, n, k)
		if (cnt > 0) != naiveRepetition(s, n, k) {
			t.Fatalf("mismatch on %q n=%d k=%d", s, n, k)
		}
	})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func BenchmarkFindRepetition(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	words := strings.Fields("the user asks for a function that parses input and returns values safely with checks")
	var sb strings.Builder
	for sb.Len() < 16<<10 {
		sb.WriteString(words[rng.Intn(len(words))] + " ")
	}
	s := sb.String()
	b.SetBytes(int64(len(s)))
	for i := 0; i < b.N; i++ {
		FindRepetition(s, 32, 8)
	}
}

func TestExtractCode(t *testing.T) {
	text := "Intro\n```python\nprint(1)\n```\ntext ```inline``` here\n" +
		"  ~~~py title=x\n  a = 2\n  ~~~\n" +
		"````\nraw ``` inside\n````\n" +
		"```Bash\nls\n```\n" +
		"```python\nunclosed = True\n"
	got := ExtractCode(text)
	want := []CodeBlock{
		{Lang: "python", Code: "print(1)", Line: 2, Closed: true},
		{Lang: "python", Code: "a = 2", Line: 6, Closed: true},
		{Lang: "", Code: "raw ``` inside", Line: 9, Closed: true},
		{Lang: "bash", Code: "ls", Line: 12, Closed: true},
		{Lang: "python", Code: "unclosed = True", Line: 15, Closed: false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestExtractAnswer(t *testing.T) {
	if got := ExtractAnswer("analysis\n## Answer\n  the answer \n"); got != "the answer" {
		t.Errorf("got %q", got)
	}
	if got := ExtractAnswer("no header"); got != "no header" {
		t.Errorf("got %q", got)
	}
}
