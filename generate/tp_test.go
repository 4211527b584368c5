package generate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/plan"
	"purpcode/tokenizer"
)

// tpBaseDir is the embedded base model (4 query over 2 KV heads, tied
// embeddings): TP=2 gives each rank one KV head and half the vocabulary.
const tpBaseDir = "../testdata/base-model"

// tpShards loads the base model once and returns it with its TP=2 shards,
// each on its own backend, and their communicators (closed at cleanup).
func tpShards(t *testing.T) (*qwen2.Model, []*qwen2.Model, []*dist.TCPComm) {
	t.Helper()
	whole, err := qwen2.Load(tpBaseDir, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}))
	if err != nil {
		t.Fatal(err)
	}
	const tp = 2
	layout, err := plan.NewLayout(whole.Cfg, tp)
	if err != nil {
		t.Fatal(err)
	}
	split := func(name string, shape []int, rank int) (int, int, int, error) {
		s, err := layout.Shard(name, shape, rank)
		return s.Dim, s.Lo, s.Hi, err
	}
	cs, err := dist.ConnectLocal(context.Background(), tp, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	shards := make([]*qwen2.Model, tp)
	for r := range tp {
		if shards[r], err = whole.Shard(context.Background(), engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), cs[r], split); err != nil {
			t.Fatal(err)
		}
	}
	return whole, shards, cs
}

// tpRequests are chat-free prompts of the base model's corpus, n samples
// each, greedy or sampled, 16 new tokens at most.
func tpRequests(t *testing.T, params SamplingParams, n int) []Request {
	t.Helper()
	tok, err := tokenizer.Load(tpBaseDir)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i, text := range []string{"Write a Python function that reads a file", "How do I hash a password?", "def parse(s):"} {
		reqs = append(reqs, Request{ID: fmt.Sprintf("tp-%d", i), Prompt: tok.Encode(text), N: n, Params: params, Seed: 5})
	}
	return reqs
}

// runTP runs reqs on one engine per shard, in lockstep, each rank's
// context from ctxs (nil: background); onDone, when set, is rank r's
// callback. It returns each rank's samples and error.
func runTP(t *testing.T, engs []*Engine, reqs []Request, ctxs []context.Context, onDone func(rank, req int)) ([][][]Sample, []error) {
	t.Helper()
	out := make([][][]Sample, len(engs))
	errs := make([]error, len(engs))
	var wg sync.WaitGroup
	for r, e := range engs {
		ctx := context.Background()
		if ctxs != nil && ctxs[r] != nil {
			ctx = ctxs[r]
		}
		out[r] = make([][]Sample, len(reqs))
		wg.Go(func() {
			errs[r] = e.Run(ctx, reqs, func(i int, s []Sample) {
				out[r][i] = slices.Clone(s)
				if onDone != nil {
					onDone(r, i)
				}
			})
		})
	}
	wg.Wait()
	return out, errs
}

func tpEngines(t *testing.T, shards []*qwen2.Model, cs []*dist.TCPComm, opts Options) []*Engine {
	t.Helper()
	engs := make([]*Engine, len(shards))
	for r, m := range shards {
		o := opts
		o.Agree = AgreeOn(cs[r])
		engs[r] = newEngine(t, m, o)
	}
	return engs
}

// identical asks for the same tokens and the same log-prob bits: the TP
// ranks sample from the same all-gathered logits.
func identical(t *testing.T, what string, got, want [][]Sample) {
	t.Helper()
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: request %d: %d samples, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j, w := range want[i] {
			g := got[i][j]
			if !slices.Equal(g.Tokens, w.Tokens) || !slices.Equal(g.LogProbs, w.LogProbs) || !slices.Equal(g.RawLogProbs, w.RawLogProbs) || g.FinishReason != w.FinishReason {
				t.Fatalf("%s: request %d sample %d:\n got %v %v\nwant %v %v", what, i, j, g.Tokens, g.RawLogProbs, w.Tokens, w.RawLogProbs)
			}
		}
	}
}

// TestTensorParallelGeneration: on the base model's TP=2 shards, greedy
// decoding gives the unsharded model's tokens (log-probs to float32
// rounding) on both ranks; sampling with per-request seeds gives the same
// tokens and log-prob bits on both ranks and in a repeated run; and a run
// cancelled on rank 0 alone stops both ranks at the same step (rank 1 with
// ErrStoppedByPeer, not a collective timeout), after which both engines
// generate again.
func TestTensorParallelGeneration(t *testing.T) {
	whole, shards, cs := tpShards(t)
	opts := Options{MaxBatch: 4, BlockSize: 8, KVBlocks: 64}

	greedy := tpRequests(t, SamplingParams{Greedy: true, MaxNewTokens: 16}, 1)
	want, err := newEngine(t, whole, opts).Generate(context.Background(), greedy)
	if err != nil {
		t.Fatal(err)
	}
	engs := tpEngines(t, shards, cs, opts)
	got, errs := runTP(t, engs, greedy, nil, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for r := range got {
		for i := range greedy {
			sameSamples(t, fmt.Sprintf("greedy rank %d vs TP=1", r), got[r][i], want[i])
			tokens += len(want[i][0].Tokens)
		}
	}
	if tokens < 2*len(greedy)*8 {
		t.Errorf("only %d greedy tokens over both ranks: the comparison says little", tokens)
	}
	identical(t, "greedy rank 1 vs rank 0", got[1], got[0])

	// MaxBatch 4 < 3 requests x 2 samples: samples queue and join the batch
	// as others finish, so the scheduling decisions are exercised too.
	sampled := tpRequests(t, SamplingParams{Temperature: 1, TopP: 0.95, MaxNewTokens: 16}, 2)
	first, errs := runTP(t, engs, sampled, nil, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	identical(t, "sampled rank 1 vs rank 0", first[1], first[0])
	if slices.Equal(first[0][0][0].Tokens, first[0][0][1].Tokens) {
		t.Errorf("samples 0 and 1 of %s are identical: %v", sampled[0].ID, first[0][0][0].Tokens)
	}
	again, errs := runTP(t, engs, sampled, nil, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	identical(t, "repeated sampled run, rank 0", again[0], first[0])
	identical(t, "repeated sampled run, rank 1", again[1], first[1])

	// Rank 0's context ends when its first request completes; rank 1's
	// never does. Without agreement rank 1 would wait in the next step's
	// collective until the communicator's timeout.
	ctx0, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done [2]int
	_, errs = runTP(t, engs, sampled, []context.Context{ctx0, nil}, func(rank, _ int) {
		done[rank]++
		if rank == 0 {
			cancel()
		}
	})
	if !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], ErrStoppedByPeer) {
		t.Fatalf("cancelled on rank 0: rank 0 %v, rank 1 %v; want context canceled and ErrStoppedByPeer", errs[0], errs[1])
	}
	if done[0] != done[1] {
		t.Errorf("ranks stopped after %d and %d completed requests: not in lockstep", done[0], done[1])
	}
	for r, e := range engs {
		if e.kv.FreeBlocks() != e.kv.NumBlocks() {
			t.Errorf("rank %d: %d of %d blocks free after the stop", r, e.kv.FreeBlocks(), e.kv.NumBlocks())
		}
	}
	after, errs := runTP(t, engs, sampled, nil, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("run after the stop: %v", err)
	}
	identical(t, "sampled run after the stop", after[0], first[0])

	// Serving takes requests as they come, which no two ranks see alike.
	if err := engs[0].Serve(context.Background(), make(chan *LiveRequest)); err == nil || !strings.Contains(err.Error(), "lockstep") {
		t.Errorf("Serve on a lockstep engine: %v, want a refusal", err)
	}
}
