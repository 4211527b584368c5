package distill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"purpcode/engine"
	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/tokenizer"
)

// toyModel is a tiny random Qwen2 with a ChatML template and a small BPE
// tokenizer (the rule context must go through a system message).
func toyModel(t testing.TB) (*qwen2.Model, *tokenizer.Tokenizer) {
	t.Helper()
	special := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
	corpus := []string{"## Analysis\nThe user asks for code.\n## Answer\n", "def run(cmd):\n    return subprocess.run(cmd)\n",
		"RULES: validate every input before use", "write a function that reads a file", "the cat sat on a mat"}
	tj, err := tokenizer.Train(corpus, 320, special)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	tc, _ := json.Marshal(map[string]any{"chat_template": tmpl, "eos_token": "<|im_end|>"})
	tok, err := tokenizer.Parse(tj, tc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen2.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":%d,
		"max_position_embeddings":160,"initializer_range":0.2,"tie_word_embeddings":true}`, tok.VocabSize())), "toy")
	if err != nil {
		t.Fatal(err)
	}
	return qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}), 5), tok
}

const rulesMarker = "RULES"

// ruleContext is a fake rule catalog: one line naming the row.
func ruleContext(row oracle.Row) string {
	return rulesMarker + ": validate every input before use (" + row.ID + ")"
}

// fakeScorer gives programmatic rewards: "easy" rows always 1, "hard" rows
// always 0, others a function of the response text in {0, 0.25, 0.5, 1}.
// It records the rows it sees.
type fakeScorer struct {
	mu   sync.Mutex
	seen []oracle.Row
	fail string // a row id whose scoring fails
}

func (f *fakeScorer) Score(_ context.Context, row oracle.Row) (oracle.Score, error) {
	f.mu.Lock()
	f.seen = append(f.seen, row)
	f.mu.Unlock()
	if row.ID == f.fail {
		return oracle.Score{}, errors.New("judge unavailable")
	}
	r := textReward(row)
	return oracle.Score{ID: row.ID, Reward: r, OracleScore: r, Format: r > 0, OracleRan: true}, nil
}

func textReward(row oracle.Row) float64 {
	switch {
	case strings.HasPrefix(row.ID, "easy"):
		return 1
	case strings.HasPrefix(row.ID, "hard"):
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(row.Response))
	return []float64{0, 0.25, 0.5, 1}[h.Sum32()%4]
}

func testRows() []oracle.Row {
	user := func(s string) []oracle.Message { return []oracle.Message{{Role: "user", Content: s}} }
	return []oracle.Row{
		{ID: "easy-1", Messages: user("write a function that reads a file"), Oracle: "codesec", Meta: map[string]any{"cwe": "CWE-22"}},
		{ID: "hard-1", Messages: user("the cat sat on a mat"), Oracle: "noreject"},
		{ID: "mix-sys", Messages: []oracle.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "def run(cmd)"}},
			Oracle: "codesec", Meta: map[string]any{"cwe": "CWE-78"}},
		{ID: "mix-raw", Prompt: "write a function", Oracle: "general-safety"},
		{ID: "mix-2", Messages: user("validate every input"), Oracle: "codesec", Meta: map[string]any{"cwe": "CWE-78"}},
		{ID: "mix-3", Messages: user("return subprocess"), Oracle: "noreject"},
		{ID: "mix-4", Messages: user("the user asks for code"), Oracle: "codesec", Meta: map[string]any{"cwe": "CWE-22"}},
	}
}

func testOptions(out string) Options {
	o := DefaultOptions()
	o.RuleContext = ruleContext
	o.MaxNewTokens = 12
	o.Seed = 11
	o.Out = out
	o.WriteSamples = true
	o.Batch = 16
	return o
}

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	return out
}

// TestRun checks the outputs against the samples: selection, threshold,
// easy ids, SFT rows without the rule context, and the summary counts.
func TestRun(t *testing.T) {
	m, tok := toyModel(t)
	rows := testRows()
	out := t.TempDir()
	sc := &fakeScorer{}
	opts := testOptions(out)
	var mu sync.Mutex
	var lastV, maxS int
	opts.OnVerified = func(v, s int) {
		mu.Lock()
		defer mu.Unlock()
		lastV, maxS = max(lastV, v), max(maxS, s)
	}
	res, err := Run(context.Background(), m, tok, sc, rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The live counts end at the summary's: every sample scored, the kept
	// ones verified.
	if maxS != res.Summary.Total.Samples || lastV != res.Summary.Total.Kept {
		t.Errorf("OnVerified reached %d verified of %d scored, summary has %d kept of %d samples",
			lastV, maxS, res.Summary.Total.Kept, res.Summary.Total.Samples)
	}
	samples := readJSONL[SampleRecord](t, filepath.Join(out, SamplesFile))
	if len(samples) != len(rows)*opts.K {
		t.Fatalf("%d samples, want %d", len(samples), len(rows)*opts.K)
	}
	sft := readJSONL[SFTRow](t, filepath.Join(out, SFTFile))
	sftByID := map[string]SFTRow{}
	for _, r := range sft {
		sftByID[r.ID] = r
	}
	easyRaw, err := os.ReadFile(filepath.Join(out, EasyFile))
	if err != nil {
		t.Fatal(err)
	}
	var wantEasy []string
	want := Summary{Total: Counts{}, ByOracle: map[string]*Counts{}, ByCWE: map[string]*Counts{}}
	var wantSFT []string
	for i, row := range rows {
		ss := samples[i*opts.K : (i+1)*opts.K]
		// The selection rule, restated: among samples with reward >= 0.5,
		// the highest reward, then the fewest tokens, then the first.
		best, kept := -1, 0
		for j, s := range ss {
			if s.ID != row.ID || s.Sample != j {
				t.Fatalf("sample record %d of %q is %q/%d", j, row.ID, s.ID, s.Sample)
			}
			if s.Reward != textReward(oracle.Row{ID: row.ID, Response: s.Text}) {
				t.Errorf("%s/%d: recorded reward %v is not the scorer's for its text", row.ID, j, s.Reward)
			}
			if !strings.HasPrefix(s.Text, oracle.AnalysisHeader) {
				t.Errorf("%s/%d: text %q lacks the analysis header", row.ID, j, s.Text)
			}
			if s.Kept != (s.Reward >= 0.5) {
				t.Errorf("%s/%d: kept %v at reward %v", row.ID, j, s.Kept, s.Reward)
			}
			if s.Reward < 0.5 {
				continue
			}
			kept++
			if best < 0 || s.Reward > ss[best].Reward || s.Reward == ss[best].Reward && s.Tokens < ss[best].Tokens {
				best = j
			}
		}
		for j, s := range ss {
			if s.Selected != (j == best) {
				t.Errorf("%s/%d: selected %v, best is %d", row.ID, j, s.Selected, best)
			}
		}
		r, ok := sftByID[row.ID]
		if ok != (best >= 0) {
			t.Fatalf("%s: SFT row present %v, best sample %d", row.ID, ok, best)
		}
		if ok {
			wantSFT = append(wantSFT, row.ID)
			wantMsgs := append(Conversation(row), oracle.Message{Role: "assistant", Content: ss[best].Text})
			if !reflect.DeepEqual(r.Messages, wantMsgs) || r.Sample != best || r.Reward != ss[best].Reward || r.Verified != kept {
				t.Errorf("%s: SFT row %+v, want messages %+v from sample %d (%d verified)", row.ID, r, wantMsgs, best, kept)
			}
		}
		easy := kept*10 >= 7*opts.K
		if easy {
			wantEasy = append(wantEasy, row.ID)
		}
		cwe, _ := row.Meta["cwe"].(string)
		if cwe == "" {
			cwe = NoCWE
		}
		for _, c := range []*Counts{&want.Total, group(want.ByOracle, row.Oracle), group(want.ByCWE, cwe)} {
			c.Prompts++
			c.Kept += kept
			if kept > 0 {
				c.Verified++
			}
			if easy {
				c.Easy++
			}
			for _, s := range ss {
				c.Samples++
				c.rewardSum += s.Reward
				if s.Format {
					c.FormatOK++
				}
			}
		}
	}
	if got := []string{}; true {
		for _, r := range sft {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, wantSFT) {
			t.Errorf("SFT rows %v, want %v in input order", got, wantSFT)
		}
	}
	// The fixture must exercise both sides of each rule.
	if !slices.Contains(wantEasy, "easy-1") || slices.Contains(wantSFT, "hard-1") || len(wantSFT) < 3 || len(wantEasy) == len(rows) {
		t.Fatalf("fixture too uniform: SFT %v, easy %v", wantSFT, wantEasy)
	}
	if got := strings.Fields(string(easyRaw)); !slices.Equal(got, wantEasy) || !slices.Equal(res.EasyIDs, wantEasy) {
		t.Errorf("easy ids %v (result %v), want %v", got, res.EasyIDs, wantEasy)
	}
	want.finish()
	var gotSum Summary
	raw, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &gotSum); err != nil {
		t.Fatal(err)
	}
	if !sameCounts(gotSum.Total, want.Total) {
		t.Errorf("total %+v, want %+v", gotSum.Total, want.Total)
	}
	for name, pair := range map[string][2]map[string]*Counts{"oracle": {gotSum.ByOracle, want.ByOracle}, "cwe": {gotSum.ByCWE, want.ByCWE}} {
		if len(pair[0]) != len(pair[1]) {
			t.Errorf("by %s: %d groups, want %d", name, len(pair[0]), len(pair[1]))
		}
		for k, w := range pair[1] {
			if g := pair[0][k]; g == nil || !sameCounts(*g, *w) {
				t.Errorf("by %s %q: %+v, want %+v", name, k, g, w)
			}
		}
	}
	if gotSum.Settings.K != opts.K || gotSum.Settings.Seed != opts.Seed || !gotSum.Settings.RuleContext {
		t.Errorf("settings %+v", gotSum.Settings)
	}
	table, err := os.ReadFile(filepath.Join(out, TableFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s\n%s", table, bytes.SplitN(sftRawForLog(t, out), []byte("\n"), 2)[0])
	for _, s := range []string{"oracle codesec", "cwe CWE-78", "cwe " + NoCWE, fmt.Sprintf("%d verified", want.Total.Verified)} {
		if !strings.Contains(string(table), s) {
			t.Errorf("summary table lacks %q:\n%s", s, table)
		}
	}

	// The rule context reaches the prompt only: never the SFT file, and
	// the oracles judge the row's own conversation.
	sftRaw, err := os.ReadFile(filepath.Join(out, SFTFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sftRaw, []byte(rulesMarker)) {
		t.Errorf("%s contains the rule context", SFTFile)
	}
	byID := map[string]oracle.Row{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	for _, seen := range sc.seen {
		orig := byID[seen.ID]
		if !reflect.DeepEqual(seen.Messages, orig.Messages) || seen.Prompt != orig.Prompt || seen.Oracle != orig.Oracle {
			t.Fatalf("scorer saw %+v, want the original row %+v", seen, orig)
		}
	}
	if len(sc.seen) != len(rows)*opts.K {
		t.Errorf("%d Score calls, want %d", len(sc.seen), len(rows)*opts.K)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func sftRawForLog(t *testing.T, out string) []byte {
	b, err := os.ReadFile(filepath.Join(out, SFTFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameCounts(a, b Counts) bool {
	a.rewardSum, b.rewardSum = 0, 0
	d := a.MeanReward - b.MeanReward
	a.MeanReward, b.MeanReward = 0, 0
	return a == b && d < 1e-12 && d > -1e-12
}

// TestRuleContextInPrompt: the samples are exactly what the engine draws
// for the conversation with the rule context as its system message, and
// differ from those drawn without it.
func TestRuleContextInPrompt(t *testing.T) {
	m, tok := toyModel(t)
	rows := testRows()[2:4] // a merged system message and a raw prompt
	opts := testOptions(t.TempDir())
	if _, err := Run(context.Background(), m, tok, &fakeScorer{}, rows, opts); err != nil {
		t.Fatal(err)
	}
	got := readJSONL[SampleRecord](t, filepath.Join(opts.Out, SamplesFile))

	msgs := SamplingMessages(rows[0], ruleContext(rows[0]))
	if len(msgs) != 2 || msgs[0].Role != "system" || msgs[0].Content != ruleContext(rows[0])+"\n\nBe brief." {
		t.Fatalf("merged conversation %+v", msgs)
	}
	if msgs := SamplingMessages(rows[1], "R"); len(msgs) != 2 || msgs[0] != (oracle.Message{Role: "system", Content: "R"}) || msgs[1] != (oracle.Message{Role: "user", Content: rows[1].Prompt}) {
		t.Fatalf("raw prompt conversation %+v", msgs)
	}
	if rows[0].Messages[0].Content != "Be brief." {
		t.Fatal("SamplingMessages modified the row")
	}

	eng, err := generate.New(m, generate.Options{EOS: []int{mustEOS(t, tok)}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	draw := func(row oracle.Row, system string) []string {
		ids, text, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: toTokenizer(SamplingMessages(row, system)), Prefix: opts.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		if system != "" && !strings.Contains(text, system) {
			t.Fatalf("prompt text lacks the rule context: %q", text)
		}
		ss, err := eng.Generate(context.Background(), []generate.Request{{ID: row.ID, Prompt: ids, N: opts.K, Seed: opts.Seed,
			Params: generate.SamplingParams{Temperature: opts.Temperature, TopP: opts.TopP, MaxNewTokens: opts.MaxNewTokens}}})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range ss[0] {
			out = append(out, Postprocess(generate.CompletionText(tok, opts.Prefix, s.Tokens)))
		}
		return out
	}
	for i, row := range rows {
		var texts []string
		for _, s := range got[i*opts.K : (i+1)*opts.K] {
			texts = append(texts, s.Text)
		}
		if with := draw(row, ruleContext(row)); !slices.Equal(texts, with) {
			t.Errorf("%s: samples %q, want those of the rule-context prompt %q", row.ID, texts, with)
		}
		if without := draw(row, ""); slices.Equal(texts, without) {
			t.Errorf("%s: samples equal those drawn without the rule context", row.ID)
		}
	}
}

func mustEOS(t *testing.T, tok *tokenizer.Tokenizer) int {
	id, ok := tok.EOS()
	if !ok {
		t.Fatal("tokenizer has no EOS")
	}
	return id
}

// TestDeterministic: the same seed gives identical files, whatever the
// batch size and chunking; another seed gives other samples.
func TestDeterministic(t *testing.T) {
	m, tok := toyModel(t)
	rows := testRows()
	run := func(seed uint64, batch, chunk int) map[string][]byte {
		opts := testOptions(t.TempDir())
		opts.Seed, opts.Batch, opts.Chunk = seed, batch, chunk
		if _, err := Run(context.Background(), m, tok, &fakeScorer{}, rows, opts); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for _, name := range []string{SFTFile, EasyFile, SummaryFile, TableFile, SamplesFile} {
			b, err := os.ReadFile(filepath.Join(opts.Out, name))
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		}
		return files
	}
	a := run(3, 16, 0)
	for _, b := range []map[string][]byte{run(3, 16, 0), run(3, 5, 2)} {
		for name, want := range a {
			if !bytes.Equal(b[name], want) {
				t.Errorf("%s differs between runs with the same seed:\n%s\n---\n%s", name, b[name], want)
			}
		}
	}
	if c := run(4, 16, 0); bytes.Equal(c[SamplesFile], a[SamplesFile]) {
		t.Error("another seed drew the same samples")
	}
}

func TestBest(t *testing.T) {
	c := func(i, tokens int, r float64) Candidate { return Candidate{Index: i, Tokens: tokens, Reward: r} }
	for _, tc := range []struct {
		name       string
		cands      []Candidate
		best, kept int
	}{
		{"highest reward wins over shorter", []Candidate{c(0, 5, 0.8), c(1, 9, 1), c(2, 3, 0.5)}, 1, 3},
		{"shortest among equal rewards", []Candidate{c(0, 9, 1), c(1, 4, 1), c(2, 6, 1)}, 1, 3},
		{"lowest index among full ties", []Candidate{c(0, 9, 0.2), c(1, 4, 1), c(2, 4, 1)}, 1, 2},
		{"below the threshold never kept", []Candidate{c(0, 1, 0.49), c(1, 20, 0.5)}, 1, 1},
		{"none kept", []Candidate{c(0, 1, 0.4), c(1, 1, 0)}, -1, 0},
		{"empty", nil, -1, 0},
	} {
		if best, kept := Best(tc.cands, 0.5); best != tc.best || kept != tc.kept {
			t.Errorf("%s: best %d kept %d, want %d %d", tc.name, best, kept, tc.best, tc.kept)
		}
	}
	for _, tc := range []struct {
		kept, k int
		frac    float64
		want    bool
	}{{6, 8, 0.7, true}, {5, 8, 0.7, false}, {7, 10, 0.7, true}, {8, 8, 1, true}, {7, 8, 1, false}, {0, 0, 0.7, false}} {
		if got := IsEasy(tc.kept, tc.k, tc.frac); got != tc.want {
			t.Errorf("IsEasy(%d, %d, %v) = %v", tc.kept, tc.k, tc.frac, got)
		}
	}
}

func TestPostprocess(t *testing.T) {
	for in, want := range map[string]string{
		"## Analysis\nfine\n## Answer\nok\n\n": "## Analysis\nfine\n## Answer\nok",
		"no header\n## Answer\nx":              "## Analysis\nno header\n## Answer\nx",
		"  \n## Analysis\nlead":                "## Analysis\nlead",
		"## Analysis\n":                        "## Analysis",
		"":                                     "## Analysis\n",
	} {
		if got := Postprocess(in); got != want {
			t.Errorf("Postprocess(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSkipsLongPromptsAndValidates(t *testing.T) {
	m, tok := toyModel(t)
	rows := testRows()[:2]
	rows[1].Messages = []oracle.Message{{Role: "user", Content: strings.Repeat("the cat sat on a mat ", 40)}}
	opts := testOptions(t.TempDir())
	res, err := Run(context.Background(), m, tok, &fakeScorer{}, rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Skipped["too_long"] != 1 || res.Summary.Total.Prompts != 1 {
		t.Errorf("skipped %v, %d prompts sampled; want the long prompt skipped", res.Summary.Skipped, res.Summary.Total.Prompts)
	}

	bad := opts
	bad.K, bad.TopP, bad.EasyFrac, bad.Out = 0, 0, 1.5, ""
	_, err = Run(context.Background(), m, tok, &fakeScorer{}, rows, bad)
	for _, s := range []string{"k = 0", "top_p", "easy_frac", "out"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("invalid options: error %v does not name %q", err, s)
		}
	}
}

// TestScoreErrorLeavesNoFiles: a row that cannot be scored fails the run,
// naming the row, and leaves neither outputs nor temporary files.
func TestScoreErrorLeavesNoFiles(t *testing.T) {
	m, tok := toyModel(t)
	opts := testOptions(t.TempDir())
	_, err := Run(context.Background(), m, tok, &fakeScorer{fail: "mix-2"}, testRows(), opts)
	if err == nil || !strings.Contains(err.Error(), `"mix-2"`) || !strings.Contains(err.Error(), "judge unavailable") {
		t.Fatalf("error %v, want the scoring failure of mix-2", err)
	}
	entries, _ := os.ReadDir(opts.Out)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left after a failed run: %v", names)
	}
}
