package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"purpcode/internal/testref"
	"slices"
	"sync"
	"testing"
)

// refsDir returns ../shared/refs beside the module root, or skips.
func refsDir(t testing.TB) string { return testref.Dir(t, "") }

// qwen3 is loaded once per test binary: parsing 151k merges takes a while
// on a shared machine. A Tokenizer is safe to share.
var qwen3 = sync.OnceValues(func() (*Tokenizer, error) {
	refs, err := testref.Root()
	if err != nil {
		return nil, err
	}
	return Load(filepath.Join(refs, "tokenizer", "qwen3"))
})

func loadQwen3(t testing.TB) *Tokenizer {
	t.Helper()
	refsDir(t) // skips when absent
	tk, err := qwen3()
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// readJSONL decodes every line of path into a fresh T.
func readJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for line := 1; sc.Scan(); line++ {
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestQwen3EncodeReference(t *testing.T) {
	tk := loadQwen3(t)
	type row struct {
		Text        string `json:"text"`
		IDs         []int  `json:"ids"`
		DecodesBack bool   `json:"decodes_back"`
	}
	rows := readJSONL[row](t, filepath.Join(refsDir(t), "tokenizer", "qwen3_encode.jsonl"))
	if len(rows) != 389 {
		t.Fatalf("got %d reference rows, want 389", len(rows))
	}
	bad := 0
	for i, r := range rows {
		got := tk.Encode(r.Text)
		if !slices.Equal(got, r.IDs) {
			bad++
			if bad <= 5 {
				t.Errorf("row %d %q:\n got %v\nwant %v", i+1, r.Text, got, r.IDs)
			}
			continue
		}
		ids2, offs := tk.EncodeWithOffsets(r.Text)
		if !slices.Equal(ids2, r.IDs) {
			t.Errorf("row %d: EncodeWithOffsets ids differ from Encode", i+1)
		}
		checkOffsets(t, r.Text, offs)
		dec := tk.Decode(r.IDs, false)
		if r.DecodesBack && dec != r.Text {
			t.Errorf("row %d: decode = %q, want %q", i+1, dec, r.Text)
		}
		if !r.DecodesBack && dec == r.Text {
			t.Errorf("row %d: reference says decode differs, but it round-trips", i+1)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows mismatched", bad, len(rows))
	}
}

// checkOffsets asserts offsets are within text, ordered and cover it.
func checkOffsets(t *testing.T, text string, offs [][2]int) {
	t.Helper()
	prev := [2]int{}
	for i, o := range offs {
		if o[0] < prev[0] || o[1] < prev[1] || o[0] > o[1] || o[1] > len(text) {
			t.Fatalf("offset %d = %v after %v: out of order or range (len %d)", i, o, prev, len(text))
		}
		prev = o
	}
	if len(offs) > 0 && offs[len(offs)-1][1] != len(text) {
		t.Fatalf("last offset %v does not end at %d", offs[len(offs)-1], len(text))
	}
}

func TestQwen3Config(t *testing.T) {
	tk := loadQwen3(t)
	if id, ok := tk.EOS(); !ok || id != 151645 || tk.Token(id) != "<|im_end|>" {
		t.Errorf("EOS = %d %v, want <|im_end|> 151645", id, ok)
	}
	if id, ok := tk.PAD(); !ok || id != 151643 {
		t.Errorf("PAD = %d %v, want <|endoftext|> 151643", id, ok)
	}
	if id, ok := tk.BOS(); ok {
		t.Errorf("BOS = %d, but Qwen3 has bos_token null", id)
	}
	if got := tk.VocabSize(); got != 151669 {
		t.Errorf("VocabSize = %d, want 151643 + 26 added", got)
	}
	sp := tk.SpecialIDs()
	if len(sp) != 14 || sp[0] != 151643 {
		t.Errorf("SpecialIDs = %v, want the 14 special added tokens from 151643", sp)
	}
	if id, ok := tk.TokenID("Ġthe"); !ok || tk.Token(id) != "Ġthe" || tk.Decode([]int{id}, false) != " the" {
		t.Errorf("TokenID(Ġthe) = %d %v", id, ok)
	}
	// <think> is added but not special: skipSpecial keeps it.
	ids := tk.Encode("<|im_start|><think>x")
	if got := tk.Decode(ids, true); got != "<think>x" {
		t.Errorf("Decode(skipSpecial) = %q, want \"<think>x\"", got)
	}
	noCfg, err := LoadFiles(filepath.Join(refsDir(t), "tokenizer", "qwen3", "tokenizer.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := noCfg.EOS(); ok {
		t.Error("EOS known without tokenizer_config.json")
	}
}
