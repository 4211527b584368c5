package generate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
)

// testModel is a tiny random model (GQA: 4 query heads over 2 kv heads)
// with logits spread enough that sampling is not uniform.
func testModel(t testing.TB) *qwen2.Model {
	t.Helper()
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":128,
		"max_position_embeddings":96,"rope_theta":10000,"initializer_range":0.25,"tie_word_embeddings":false}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	return qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 11)
}

// testModels adds the PyTorch-checked reference checkpoint when present.
func testModels(t *testing.T) map[string]*qwen2.Model {
	ms := map[string]*qwen2.Model{"random": testModel(t)}
	t.Run("load-ref", func(t *testing.T) {
		dir := testref.Dir(t, "qwen2-tiny")
		m, err := qwen2.Load(dir, engine.NewDefaultCPU(engine.CPUOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		ms["ref"] = m
	})
	return ms
}

func newEngine(t testing.TB, m *qwen2.Model, opts Options) *Engine {
	t.Helper()
	e, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// mixedRequests are prompts of different lengths (block boundaries on both
// sides), greedy and sampled, several samples each.
func mixedRequests(vocab int) []Request {
	r := rand.New(rand.NewPCG(21, 22))
	lengths := []int{3, 17, 1, 40, 16, 9}
	params := []SamplingParams{
		{Greedy: true, MaxNewTokens: 12},
		{Temperature: 0.8, TopK: 20, TopP: 0.9, MaxNewTokens: 15},
		{Temperature: 1, MaxNewTokens: 9},
		{Temperature: 1.3, TopP: 0.7, MaxNewTokens: 20},
		{Temperature: 0.6, TopK: 5, MaxNewTokens: 7},
		{Temperature: 1, TopP: 0.95, MaxNewTokens: 30},
	}
	var reqs []Request
	for i, n := range lengths {
		p := make([]int, n)
		for j := range p {
			p[j] = r.IntN(vocab)
		}
		reqs = append(reqs, Request{ID: fmt.Sprintf("req-%d", i), Prompt: p, N: 1 + i%3, Params: params[i], Seed: 99})
	}
	return reqs
}

// sameSamples compares two results: tokens exactly, log-probs to float32
// noise (GEMM rows can differ in the last bit with the batch's row count).
func sameSamples(t *testing.T, what string, got, want []Sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.RequestID != w.RequestID || g.Index != w.Index || g.FinishReason != w.FinishReason || !slices.Equal(g.Tokens, w.Tokens) {
			t.Fatalf("%s sample %d:\n got %s %d %s %v\nwant %s %d %s %v", what, i, g.RequestID, g.Index, g.FinishReason, g.Tokens, w.RequestID, w.Index, w.FinishReason, w.Tokens)
		}
		for j := range w.LogProbs {
			if d := math.Abs(float64(g.LogProbs[j] - w.LogProbs[j])); d > 1e-4 {
				t.Fatalf("%s sample %d token %d: log-prob %v vs %v", what, i, j, g.LogProbs[j], w.LogProbs[j])
			}
			if d := math.Abs(float64(g.RawLogProbs[j] - w.RawLogProbs[j])); d > 1e-4 {
				t.Fatalf("%s sample %d token %d: raw log-prob %v vs %v", what, i, j, g.RawLogProbs[j], w.RawLogProbs[j])
			}
		}
	}
}

// TestBatchInvariance: each request generated alone, all of them in one
// continuous batch, in a batch too small to hold them, and with a KV pool
// so small that requests queue and prompts prefill in chunks, gives the same
// samples.
func TestBatchInvariance(t *testing.T) {
	m := testModel(t)
	reqs := mixedRequests(m.Cfg.Vocab)
	alone := make([][]Sample, len(reqs))
	e := newEngine(t, m, Options{})
	for i := range reqs {
		out, err := e.Generate(context.Background(), reqs[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = out[0]
	}
	// The samples of one request must differ from each other (own streams).
	if s := alone[3]; len(s) > 1 && slices.Equal(s[0].Tokens, s[1].Tokens) {
		t.Errorf("samples 0 and 1 of %s are identical: %v", reqs[3].ID, s[0].Tokens)
	}
	// Smallest pool (in blocks of bs tokens) that fits the largest request.
	minPool := func(bs int) int {
		probe := newEngine(t, m, Options{BlockSize: bs, KVBlocks: 1000})
		n := 0
		for i := range reqs {
			g, err := probe.newGroup(i, &reqs[i])
			if err != nil {
				t.Fatal(err)
			}
			n = max(n, probe.rootNeed(g)+probe.sampleNeed(g))
		}
		return n
	}
	configs := map[string]Options{
		"one batch":            {MaxBatch: 32},
		"batch of 3":           {MaxBatch: 3},
		"tiny pool and chunks": {MaxBatch: 8, BlockSize: 4, KVBlocks: minPool(4), MaxStepTokens: 10},
		"minimal pool":         {MaxBatch: 2, BlockSize: 16, KVBlocks: minPool(16)},
	}
	for name, opts := range configs {
		e := newEngine(t, m, opts)
		var order []int
		got := make([][]Sample, len(reqs))
		err := e.Run(context.Background(), reqs, func(i int, s []Sample) {
			order = append(order, i)
			got[i] = slices.Clone(s)
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(order) != len(reqs) {
			t.Fatalf("%s: onDone called for %v", name, order)
		}
		for i := range reqs {
			sameSamples(t, fmt.Sprintf("%s: %s", name, reqs[i].ID), got[i], alone[i])
		}
		if e.kv.FreeBlocks() != e.kv.NumBlocks() {
			t.Errorf("%s: %d of %d blocks free after the run", name, e.kv.FreeBlocks(), e.kv.NumBlocks())
		}
		t.Logf("%s: completion order %v", name, order)
	}
}

// refLogProbs recomputes, from the full forward pass over prompt+sample,
// the log-softmax at every sampled token and its log-prob under the
// filtered, renormalised sampling distribution (by sorting everything).
func refLogProbs(m *qwen2.Model, prompt []int, s Sample, sp SamplingParams) (raw, samp []float64) {
	for i, tok := range s.Tokens {
		row := refLogits(m, prompt, s, i)
		raw = append(raw, float64(row[tok])-logSumExp(row))
		if sp.isGreedy() {
			samp = append(samp, raw[i])
			continue
		}
		p := bruteDistribution(row, sp)
		samp = append(samp, math.Log(p[tok]))
	}
	return raw, samp
}

// TestLogProbsMatchForward checks both reported log-probs of every sampled
// token against a full forward pass over the finished sequence.
func TestLogProbsMatchForward(t *testing.T) {
	for name, m := range testModels(t) {
		t.Run(name, func(t *testing.T) {
			reqs := mixedRequests(m.Cfg.Vocab)
			e := newEngine(t, m, Options{MaxBatch: 4, BlockSize: 8})
			out, err := e.Generate(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i, samples := range out {
				for _, s := range samples {
					raw, samp := refLogProbs(m, reqs[i].Prompt, s, reqs[i].Params)
					for j := range s.Tokens {
						d1 := math.Abs(float64(s.RawLogProbs[j]) - raw[j])
						d2 := math.Abs(float64(s.LogProbs[j]) - samp[j])
						worst = math.Max(worst, math.Max(d1, d2))
						if d1 > 1e-4 || d2 > 1e-4 {
							t.Fatalf("%s sample %d token %d (%d): raw %v vs %v, sampling %v vs %v",
								s.RequestID, s.Index, j, s.Tokens[j], s.RawLogProbs[j], raw[j], s.LogProbs[j], samp[j])
						}
					}
				}
			}
			t.Logf("worst log-prob difference %.2g", worst)
		})
	}
}

// TestStopConditions covers EOS, stop ids, stop strings and lengths.
func TestStopConditions(t *testing.T) {
	m := testModel(t)
	prompt := []int{5, 6, 7, 8}
	greedy := SamplingParams{Greedy: true, MaxNewTokens: 20}
	run := func(opts Options, sp SamplingParams) Sample {
		t.Helper()
		e := newEngine(t, m, opts)
		out, err := e.Generate(context.Background(), []Request{{ID: "p", Prompt: prompt, Params: sp}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0][0]
	}
	base := run(Options{}, greedy)
	if base.FinishReason != FinishLength || len(base.Tokens) != 20 {
		t.Fatalf("no stop: %s after %d tokens", base.FinishReason, len(base.Tokens))
	}
	// Stop at the first occurrence of the token generated 6th.
	stopTok := base.Tokens[5]
	first := slices.Index(base.Tokens, stopTok)
	if s := run(Options{EOS: []int{stopTok}}, greedy); s.FinishReason != FinishStop || !slices.Equal(s.Tokens, base.Tokens[:first+1]) {
		t.Errorf("EOS %d: %s %v, want stop after %v", stopTok, s.FinishReason, s.Tokens, base.Tokens[:first+1])
	}
	withStopID := greedy
	withStopID.StopIDs = []int{stopTok}
	if s := run(Options{}, withStopID); s.FinishReason != FinishStop || len(s.Tokens) != first+1 {
		t.Errorf("stop id %d: %s after %d tokens, want %d", stopTok, s.FinishReason, len(s.Tokens), first+1)
	}
	// Stop strings over a toy decoding of one letter-group per id; the
	// string spans the 4th and 5th tokens.
	decode := func(ids []int) string {
		var sb strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&sb, "<%d>", id)
		}
		return sb.String()
	}
	withStr := greedy
	withStr.StopStrings = []string{fmt.Sprintf("%d><%d", base.Tokens[3], base.Tokens[4])}
	want := len(base.Tokens)
	for j := 4; j < len(base.Tokens); j++ {
		if strings.Contains(decode(base.Tokens[:j+1]), withStr.StopStrings[0]) {
			want = j + 1
			break
		}
	}
	if s := run(Options{Decode: decode}, withStr); s.FinishReason != FinishStop || len(s.Tokens) != want {
		t.Errorf("stop string %q: %s after %d tokens, want %d", withStr.StopStrings[0], s.FinishReason, len(s.Tokens), want)
	}
	// max_position_embeddings caps the length.
	long := make([]int, m.Cfg.MaxPositions-3)
	e := newEngine(t, m, Options{})
	out, err := e.Generate(context.Background(), []Request{{ID: "long", Prompt: long, Params: greedy}})
	if err != nil {
		t.Fatal(err)
	}
	if s := out[0][0]; len(s.Tokens) != 3 || s.FinishReason != FinishLength {
		t.Errorf("prompt 3 short of max positions: %d tokens, %s", len(s.Tokens), s.FinishReason)
	}
}

// TestStreamingOrder: a short request reports before a long one finishes.
func TestStreamingOrder(t *testing.T) {
	m := testModel(t)
	e := newEngine(t, m, Options{})
	reqs := []Request{
		{ID: "long", Prompt: []int{1, 2, 3}, N: 2, Params: SamplingParams{Temperature: 1, MaxNewTokens: 40}},
		{ID: "short", Prompt: []int{4, 5}, N: 3, Params: SamplingParams{Temperature: 1, MaxNewTokens: 2}},
	}
	var order []string
	err := e.Run(context.Background(), reqs, func(i int, s []Sample) {
		if len(s) != reqs[i].N {
			t.Errorf("%s: %d samples, want %d", reqs[i].ID, len(s), reqs[i].N)
		}
		for j, x := range s {
			if x.Index != j || x.RequestID != reqs[i].ID || x.FinishReason == "" {
				t.Errorf("%s sample %d: %+v", reqs[i].ID, j, x)
			}
		}
		order = append(order, reqs[i].ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []string{"short", "long"}) {
		t.Errorf("completion order %v", order)
	}
}

// TestCancelReleasesCache: a cancelled run returns the context's error and
// leaves the pool empty for the next run.
func TestCancelReleasesCache(t *testing.T) {
	m := testModel(t)
	e := newEngine(t, m, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	reqs := mixedRequests(m.Cfg.Vocab)
	calls := 0
	err := e.Run(ctx, reqs, func(int, []Sample) {
		calls++
		cancel()
	})
	if err != context.Canceled {
		t.Fatalf("err %v after %d callbacks, want context.Canceled", err, calls)
	}
	if calls != 1 {
		t.Errorf("%d callbacks after cancel", calls)
	}
	if e.kv.FreeBlocks() != e.kv.NumBlocks() {
		t.Errorf("%d of %d blocks free after cancel", e.kv.FreeBlocks(), e.kv.NumBlocks())
	}
	if _, err := e.Generate(context.Background(), reqs[:1]); err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

// TestRequestErrors checks that bad requests are refused up front, naming
// the request.
func TestRequestErrors(t *testing.T) {
	m := testModel(t)
	e := newEngine(t, m, Options{KVBlocks: 3, BlockSize: 4})
	ok := SamplingParams{Temperature: 1, MaxNewTokens: 4}
	cases := map[string]Request{
		"empty prompt":   {Params: ok},
		"id range":       {Prompt: []int{m.Cfg.Vocab}, Params: ok},
		"too long":       {Prompt: make([]int, m.Cfg.MaxPositions), Params: ok},
		"no max tokens":  {Prompt: []int{1}, Params: SamplingParams{Temperature: 1}},
		"bad top-p":      {Prompt: []int{1}, Params: SamplingParams{TopP: 1.5, MaxNewTokens: 1}},
		"negative temp":  {Prompt: []int{1}, Params: SamplingParams{Temperature: -1, MaxNewTokens: 1}},
		"stop no decode": {Prompt: []int{1}, Params: SamplingParams{StopStrings: []string{"x"}, MaxNewTokens: 1}},
		"pool too small": {Prompt: make([]int, 10), Params: SamplingParams{MaxNewTokens: 10}},
	}
	for name, r := range cases {
		r.ID = name
		_, err := e.Generate(context.Background(), []Request{{ID: "fine", Prompt: []int{1}, Params: ok}, r})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the request", name, err)
		}
	}
}
