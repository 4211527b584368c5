package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeChat encodes each message as [role id, one token per content byte],
// marking assistant content tokens.
type fakeChat struct{}

func (fakeChat) EncodeChat(msgs []Message) (*Encoded, error) {
	e := &Encoded{}
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	for i, m := range msgs {
		e.IDs = append(e.IDs, 1)
		e.Assistant = append(e.Assistant, false)
		e.LastAssistant = append(e.LastAssistant, false)
		for _, c := range []byte(m.Content) {
			e.IDs = append(e.IDs, int(c))
			e.Assistant = append(e.Assistant, m.Role == "assistant")
			e.LastAssistant = append(e.LastAssistant, i == last)
		}
	}
	return e, nil
}

func TestStructuralErrorsNameFileAndLine(t *testing.T) {
	good := `{"input_ids":[1,2,3],"labels":[-100,2,3]}`
	cases := []struct{ line, want string }{
		{`{"input_ids":[1,2,`, "malformed JSON"},
		{`{"text":"hello"}`, `neither "messages"`},
		{`{"messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}`, `unknown role "robot"`},
		{`{"messages":[{"role":"user"}]}`, `missing "content"`},
		{`{"messages":[]}`, `"messages" is empty`},
		{`{"messages":"hi"}`, `"messages": want a list`},
		{`{"messages":[{"role":"user","content":["part"]}]}`, `"content" must be a string`},
		{`{"input_ids":[1,2,3],"labels":[1,2]}`, "2 entries for 3 input_ids"},
		{`{"input_ids":[1,2,300]}`, "outside the vocabulary"},
		{`{"input_ids":[1,-5,3]}`, `"input_ids"[1] = -5`},
		{`{"input_ids":[]}`, `"input_ids" is empty`},
		{`{"input_ids":[1],"messages":[]}`, "both"},
	}
	for _, c := range cases {
		p := writeLines(t, good, "", good, c.line)
		_, err := Load([]string{p}, Options{SeqLen: 8, Vocab: 256, Chat: fakeChat{}})
		if err == nil {
			t.Errorf("%s: loaded without error", c.line)
			continue
		}
		if !strings.Contains(err.Error(), p+":4:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want %s:4 and %q", c.line, err, p, c.want)
		}
	}
}

func TestSkipsAndTruncationAreCounted(t *testing.T) {
	p := writeLines(t,
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"no reply"}]}`,   // no assistant
		`{"input_ids":[1,2,3],"labels":[-100,-100,-100]}`,                                       // no labels
		`{"input_ids":[1,2,3,4,5,6,7,8,9,10]}`,                                                  // over-long
		`{"input_ids":[1,2,3,4,5,6,7,8,9,10],"labels":[-100,-100,-100,-100,-100,-100,9,9,9,9]}`, // targets only past the cut
		`{"input_ids":[5,6,7],"labels":[-100,6,7]}`,
		`{"messages":[{"role":"user","content":"ab"},{"role":"assistant","content":"cd"}],"id":"x"}`,
	)
	d, err := Load([]string{p}, Options{SeqLen: 6, Chat: fakeChat{}})
	if err != nil {
		t.Fatal(err)
	}
	s := d.Stats
	want := map[string]int{SkipNoAssistant: 1, SkipNoLabels: 1, SkipTruncatedToNone: 1}
	if s.Rows != 3 || s.Truncated != 1 || s.Lines != 6 || fmt.Sprint(s.Skipped) != fmt.Sprint(want) {
		t.Errorf("stats %+v, want 3 rows, 1 truncated, skipped %v", s, want)
	}
	if len(d.Rows[0].IDs) != 6 || d.Rows[0].Targets != 5 {
		t.Errorf("truncated row %+v, want 6 tokens with 5 targets", d.Rows[0])
	}
	if !strings.Contains(s.String(), "1 truncated") {
		t.Errorf("summary %q lacks the truncation count", s.String())
	}

	d, err = Load([]string{p}, Options{SeqLen: 6, Overlong: OverlongSkip, Chat: fakeChat{}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Stats.Rows != 2 || d.Stats.Skipped[SkipOverlong] != 2 || d.Stats.Truncated != 0 {
		t.Errorf("skip policy stats %+v, want 2 rows and 2 over-long skips", d.Stats)
	}
}

func TestEmptyDatasetIsAnError(t *testing.T) {
	for _, lines := range [][]string{{""}, {`{"messages":[{"role":"user","content":"q"}]}`}} {
		p := writeLines(t, lines...)
		_, err := Load([]string{p}, Options{SeqLen: 8, Chat: fakeChat{}})
		if err == nil || !strings.Contains(err.Error(), "no usable rows") {
			t.Errorf("lines %q: err %v, want no usable rows", lines, err)
		}
	}
	if _, err := Load([]string{filepath.Join(t.TempDir(), "missing.jsonl")}, Options{SeqLen: 8}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestChatMasks(t *testing.T) {
	p := writeLines(t, `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"bc"},{"role":"user","content":"d"},{"role":"assistant","content":"ef"}]}`)
	last, err := Load([]string{p}, Options{SeqLen: 64, Chat: fakeChat{}})
	if err != nil {
		t.Fatal(err)
	}
	all, err := Load([]string{p}, Options{SeqLen: 64, Chat: fakeChat{}, TrainOn: TrainAllAssistant})
	if err != nil {
		t.Fatal(err)
	}
	const I = IgnoreIndex
	// ids: 1 a | 1 b c | 1 d | 1 e f
	wantLast := []int32{I, I, I, I, I, I, I, I, 'e', 'f'}
	wantAll := []int32{I, I, I, 'b', 'c', I, I, I, 'e', 'f'}
	if !slices.Equal(last.Rows[0].Labels, wantLast) || !slices.Equal(all.Rows[0].Labels, wantAll) {
		t.Errorf("labels last %v all %v, want %v and %v", last.Rows[0].Labels, all.Rows[0].Labels, wantLast, wantAll)
	}
	if _, err := Load([]string{p}, Options{SeqLen: 64}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Errorf("chat row without encoder: %v", err)
	}
}

func TestPermutationIsDeterministicAndUniformish(t *testing.T) {
	a, b := Permutation(50, 7), Permutation(50, 7)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different permutations")
	}
	if slices.Equal(a, Permutation(50, 8)) {
		t.Error("different seeds gave the same permutation")
	}
	s := slices.Clone(a)
	slices.Sort(s)
	for i, v := range s {
		if v != i {
			t.Fatalf("not a permutation: %v", a)
		}
	}
	// Every position sees many different values over seeds.
	first := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		first[Permutation(10, seed)[0]] = true
	}
	if len(first) != 10 {
		t.Errorf("first element took only %d of 10 values over 200 seeds", len(first))
	}
}

func TestPackingLayout(t *testing.T) {
	d := &Dataset{Rows: []Row{
		{IDs: []int32{10, 11, 12}, Labels: []int32{IgnoreIndex, 11, 12}},
		{IDs: []int32{20, 21}, Labels: []int32{20, 21}},
		{IDs: []int32{30, 31, 32, 33}, Labels: []int32{30, 31, 32, 33}},
	}}
	lay := Layout{B: 2, T: 6, Pack: true, Pad: 0}
	ep := NewEpoch(d, nil, lay)
	if ep.Sequences() != 2 || ep.MicroBatches() != 1 || ep.Tokens() != 9 {
		t.Fatalf("sequences %d micro-batches %d tokens %d, want 2, 1, 9", ep.Sequences(), ep.MicroBatches(), ep.Tokens())
	}
	b := lay.NewBatch()
	targets, tokens := ep.Fill(0, b)
	const I = IgnoreIndex
	want := struct{ ids, pos, seg, tgt []int32 }{
		ids: []int32{10, 11, 12, 20, 21, 0, 30, 31, 32, 33, 0, 0},
		pos: []int32{0, 1, 2, 0, 1, 0, 0, 1, 2, 3, 0, 1},
		seg: []int32{0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1, 1},
		// Row 0's last token (12) must not predict row 1's first (20).
		tgt: []int32{11, 12, I, 21, I, I, 31, 32, 33, I, I, I},
	}
	if !slices.Equal(b.IDs, want.ids) || !slices.Equal(b.Pos, want.pos) || !slices.Equal(b.Seg, want.seg) || !slices.Equal(b.Targets, want.tgt) {
		t.Errorf("packed batch\n ids %v\n pos %v\n seg %v\n tgt %v\nwant\n ids %v\n pos %v\n seg %v\n tgt %v",
			b.IDs, b.Pos, b.Seg, b.Targets, want.ids, want.pos, want.seg, want.tgt)
	}
	if targets != 6 || tokens != 9 {
		t.Errorf("Fill counted %d targets, %d tokens; want 6, 9", targets, tokens)
	}
	// Without packing: one row per sequence, last micro-batch padded.
	ep = NewEpoch(d, []int{2, 0, 1}, Layout{B: 2, T: 6})
	if ep.Sequences() != 3 || ep.MicroBatches() != 2 {
		t.Fatalf("unpacked: %d sequences, %d micro-batches", ep.Sequences(), ep.MicroBatches())
	}
	ep.Fill(1, b)
	if !slices.Equal(b.IDs[:6], []int32{20, 21, 0, 0, 0, 0}) || !slices.Equal(b.Targets[6:], []int32{I, I, I, I, I, I}) {
		t.Errorf("last unpacked micro-batch ids %v targets %v", b.IDs, b.Targets)
	}
}

// FuzzLoadLine: no input line makes loading panic; accepted rows respect
// the sequence length and vocabulary.
func FuzzLoadLine(f *testing.F) {
	f.Add(`{"input_ids":[1,2,3],"labels":[-100,2,3]}`)
	f.Add(`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`)
	f.Add(`{"input_ids":[1,2,3,4,5,6,7,8,9,10,11]}`)
	f.Fuzz(func(t *testing.T, line string) {
		p := filepath.Join(t.TempDir(), "f.jsonl")
		if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Load([]string{p}, Options{SeqLen: 8, Vocab: 128, Chat: fakeChat{}})
		if err != nil {
			return
		}
		for _, r := range d.Rows {
			if len(r.IDs) > 8 || len(r.IDs) != len(r.Labels) || r.Targets == 0 {
				t.Fatalf("row %+v violates the limits", r)
			}
			for _, id := range r.IDs {
				if id < 0 || id >= 128 {
					t.Fatalf("id %d outside the vocabulary", id)
				}
			}
		}
	})
}
