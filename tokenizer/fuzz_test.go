package tokenizer

import (
	"purpcode/internal/testref"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// expectedRoundTrip is what decode(encode(s)) must give: s with its text
// between added tokens NFC-normalized. HF matches added tokens before
// normalizing, so this equals NFC(s) except where a combining mark follows
// an added token (NFC would compose it with the token's last character).
func expectedRoundTrip(tk *Tokenizer, s string) string {
	var b strings.Builder
	for pos := 0; pos <= len(s); {
		ms, me, k := tk.rawAdded.find(s, pos)
		end := len(s)
		if k >= 0 {
			end = ms
		}
		b.WriteString(norm.NFC.String(s[pos:end]))
		if k < 0 {
			break
		}
		b.WriteString(s[ms:me])
		pos = me
	}
	return b.String()
}

// FuzzEncode: arbitrary bytes never panic, offsets stay ordered and in
// range, and valid UTF-8 round-trips to its NFC form — exactly NFC(x) for
// a tokenizer without added tokens, and per added-token-delimited chunk for
// Qwen3's (when the reference files are present).
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "hello world", "def f(x):\n    return x\n", "e\u0301 combining", "<|im_end|>\u0338",
		"\xff\xfe invalid \xc3", "  \t\n\r\n  ", "東京 😀 ſ'ſ", strings.Repeat("ab", 100), "'s'S'll 123456",
	} {
		f.Add([]byte(s))
	}
	plain, err := Train([]string{"func main() { fmt.Println(\"hi\") }\n", "naïve café 東京 😀 12345", "  \n\t x'll"}, 400, nil)
	if err != nil {
		f.Fatal(err)
	}
	tks := []*Tokenizer{}
	tk, err := Parse(plain, nil)
	if err != nil {
		f.Fatal(err)
	}
	tks = append(tks, tk)
	if q, ok := qwen3IfPresent(f); ok {
		tks = append(tks, q)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		for k, tk := range tks {
			ids := tk.Encode(s)
			ids2, offs := tk.EncodeWithOffsets(s)
			// EncodeWithOffsets normalizes segment by segment; it must give
			// the same ids as normalizing the whole text.
			if !slices.Equal(ids, ids2) || len(offs) != len(ids) {
				t.Fatalf("tokenizer %d: Encode gives %v, EncodeWithOffsets %v with %d offsets", k, ids, ids2, len(offs))
			}
			for i, o := range offs {
				if o[0] < 0 || o[0] > o[1] || o[1] > len(s) || (i > 0 && (o[0] < offs[i-1][0] || o[1] < offs[i-1][1])) {
					t.Fatalf("tokenizer %d: bad offset %d %v in %v", k, i, o, offs)
				}
			}
			dec := tk.Decode(ids, false)
			if !utf8.ValidString(s) {
				continue
			}
			want := expectedRoundTrip(tk, s)
			if k == 0 {
				want = norm.NFC.String(s)
			}
			if dec != want {
				t.Fatalf("tokenizer %d: decode(encode(%q)) = %q, want %q", k, s, dec, want)
			}
		}
	})
}

// qwen3IfPresent returns the reference Qwen3 tokenizer without skipping
// the caller when the reference folder is absent.
func qwen3IfPresent(tb testing.TB) (*Tokenizer, bool) {
	if _, err := testref.Root(); err != nil {
		return nil, false
	}
	tk, err := qwen3()
	if err != nil {
		tb.Logf("Qwen3 reference tokenizer not used: %v", err)
		return nil, false
	}
	return tk, true
}
