package qwen2_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/plan"
)

// tpTol is the agreement asked of a sharded run with the unsharded one:
// the max-abs difference of each tensor relative to its max-abs value.
// The shards' partial sums are added in a different order than one GEMM
// adds them, so agreement is to float32 rounding, not bitwise.
const tpTol = 1e-5

// planSplit is plan's Megatron layout as the model's SplitFunc.
func planSplit(t testing.TB, cfg *qwen2.Config, tp int) qwen2.SplitFunc {
	t.Helper()
	l, err := plan.NewLayout(cfg, tp)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string, shape []int, rank int) (int, int, int, error) {
		s, err := l.Shard(name, shape, rank)
		return s.Dim, s.Lo, s.Hi, err
	}
}

// tpModels are the models the TP tests run on: the embedded base model
// (4 query over 2 KV heads, tied: TP=4 holds each KV head on two ranks)
// and a random one with q/k/v biases, an untied head, 8 query over 4 KV
// heads and sizes that do not divide evenly (vocab 97, intermediate 46).
func tpModels(t *testing.T) map[string]*qwen2.Model {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	base, err := qwen2.Load("../../testdata/base-model", cpu)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":64,"intermediate_size":46,
		"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":97,
		"max_position_embeddings":64,"rope_theta":10000,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`), "tiny-tp")
	if err != nil {
		t.Fatal(err)
	}
	rnd := qwen2.New(cfg, cpu, 11)
	// HF init leaves biases at zero and norms at one: perturb them so their
	// gradients and effects are exercised.
	r := rand.New(rand.NewPCG(3, 4))
	for _, p := range rnd.P.List {
		if !p.Decay {
			for i := range p.W.F32 {
				p.W.F32[i] += float32(r.NormFloat64() * 0.1)
			}
		}
	}
	return map[string]*qwen2.Model{"base": base, "random": rnd}
}

// tpBatch is two rows, the second packing two documents, with ignored
// targets in both.
func tpBatch(vocab int) *qwen2.Batch {
	const b, t = 2, 20
	r := rand.New(rand.NewPCG(5, 6))
	bt := &qwen2.Batch{B: b, T: t, IDs: make([]int32, b*t), Seg: make([]int32, b*t), Targets: make([]int32, b*t)}
	for i := range bt.IDs {
		bt.IDs[i] = int32(r.IntN(vocab))
	}
	for i := t + 12; i < 2*t; i++ {
		bt.Seg[i] = 1
	}
	for row := range b {
		labels := slices.Clone(bt.IDs[row*t : (row+1)*t])
		for j := range 3 {
			labels[j+row] = engine.IgnoreIndex
		}
		copy(bt.Targets[row*t:], qwen2.ShiftLabels(labels))
	}
	return bt
}

// tpResult is what one rank (or the unsharded model) computed.
type tpResult struct {
	loss    float64
	count   int
	tok     []float32
	hidden  []float32
	logits  []float32 // (len(tpRows), V)
	logp    []float32 // TokenStats
	norm    float64   // GradNorm of the cross-entropy gradients
	normErr error
	ent     []float32
	// grads are the cross-entropy gradients by parameter name, then
	// (under "policy:" + name) the gradients of a GRPO-style TokenGrad.
	grads map[string][]float32
}

var tpRows = []int{0, 7, 25, 39}

func runStep(m *qwen2.Model, b *qwen2.Batch, recompute bool) tpResult {
	a := m.NewActs(b.B, b.T)
	if recompute {
		a = m.NewActsRecompute(b.B, b.T)
	}
	m.P.ZeroGrad()
	m.Forward(a, b)
	loss, count := m.Loss(a, b, true, 1/float32(17))
	m.Backward(a, b)
	res := tpResult{loss: loss, count: count, tok: slices.Clone(a.TokenLoss()), hidden: slices.Clone(a.Hidden().F32),
		grads: map[string][]float32{}}
	for _, p := range m.P.List {
		res.grads[p.Name] = slices.Clone(p.G.F32)
	}
	res.norm, res.normErr = m.GradNorm()
	// A fresh forward for the rest: Backward may overwrite activations.
	m.P.ZeroGrad()
	m.Forward(a, b)
	lg := engine.FromF32(make([]float32, len(tpRows)*m.Cfg.Vocab), len(tpRows), m.Cfg.Vocab)
	m.Logits(a, tpRows, lg)
	res.logits = lg.F32
	n := len(b.Targets)
	res.logp, res.ent = make([]float32, n), make([]float32, n)
	m.TokenStats(a, b, engine.TokenStats{LogProb: res.logp, Entropy: res.ent})
	// Per-token coefficients of a GRPO-like loss (advantage-weighted
	// log-probabilities and an entropy bonus), from a fixed stream.
	r := rand.New(rand.NewPCG(7, 7))
	coefLogp, coefEnt := make([]float32, n), make([]float32, n)
	for i := range coefLogp {
		coefLogp[i], coefEnt[i] = float32(r.NormFloat64()*0.1), 0.01
	}
	m.TokenGrad(a, b, coefLogp, coefEnt)
	m.Backward(a, b)
	for _, p := range m.P.List {
		res.grads["policy:"+p.Name] = slices.Clone(p.G.F32)
	}
	return res
}

// runTP runs the step on tp ranks (goroutines over loopback TCP) and
// returns each rank's result.
func runTP(t *testing.T, m *qwen2.Model, b *qwen2.Batch, tp int, recompute bool) []tpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comms, err := dist.ConnectLocal(ctx, tp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	split := planSplit(t, m.Cfg, tp)
	out := make([]tpResult, tp)
	errs := make([]error, tp)
	var wg sync.WaitGroup
	for r := range tp {
		wg.Go(func() {
			defer comms[r].Close()
			sh, err := m.Shard(ctx, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), comms[r], split)
			if err != nil {
				errs[r] = err
				return
			}
			out[r] = runStep(sh, b, recompute)
			errs[r] = sh.Err()
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return out
}

// relErr is max|got-want| / max|want|.
func relErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = max(s, math.Abs(float64(want[i])))
	}
	if s == 0 {
		return d
	}
	return d / s
}

// gather places every rank's slice of each gradient at its place in the
// full shape; where ranks hold the same elements (norms, KV heads shared
// by ranks) their values must be bitwise equal.
func gather(t *testing.T, full *qwen2.Model, split qwen2.SplitFunc, ranks []tpResult) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range full.P.List {
		for _, key := range []string{p.Name, "policy:" + p.Name} {
			out[key] = gatherOne(t, p, key, split, ranks)
		}
	}
	return out
}

func gatherOne(t *testing.T, p *qwen2.Param, key string, split qwen2.SplitFunc, ranks []tpResult) []float32 {
	t.Helper()
	{
		g := make([]float32, p.G.Numel())
		seen := make([]bool, len(g))
		for r, res := range ranks {
			dim, lo, hi, err := split(p.Name, p.G.Shape, r)
			if err != nil {
				t.Fatal(err)
			}
			src := res.grads[key]
			inner, rows, outer := 1, len(g), 1
			if dim >= 0 {
				inner = engine.Numel(p.G.Shape[dim+1:])
				outer = engine.Numel(p.G.Shape[:dim])
				rows = p.G.Shape[dim]
			} else {
				lo, hi = 0, rows
			}
			run := (hi - lo) * inner
			for o := range outer {
				for k := range run {
					i, v := (o*rows+lo)*inner+k, src[o*run+k]
					if seen[i] && g[i] != v {
						t.Fatalf("%s: element %d differs between ranks holding it: %g vs %g", key, i, g[i], v)
					}
					g[i], seen[i] = v, true
				}
			}
		}
		if i := slices.Index(seen, false); i >= 0 {
			t.Fatalf("%s: element %d held by no rank", key, i)
		}
		return g
	}
}

func TestTPMatchesUnsharded(t *testing.T) {
	for name, m := range tpModels(t) {
		b := tpBatch(m.Cfg.Vocab)
		if err := m.Validate(b); err != nil {
			t.Fatal(err)
		}
		want := runStep(m, b, false)
		for _, tp := range []int{2, 4} {
			for _, recompute := range []bool{false, true} {
				if recompute && tp != 2 {
					continue
				}
				t.Run(fmt.Sprintf("%s/tp%d/recompute=%v", name, tp, recompute), func(t *testing.T) {
					ranks := runTP(t, m, b, tp, recompute)
					worst := 0.0
					for r, got := range ranks {
						if got.count != want.count {
							t.Fatalf("rank %d: %d targets, want %d", r, got.count, want.count)
						}
						if e := math.Abs(got.loss-want.loss) / math.Abs(want.loss); e > tpTol {
							t.Errorf("rank %d: loss %.8g, unsharded %.8g (rel %.2g)", r, got.loss, want.loss, e)
						}
						if e := math.Abs(got.norm-want.norm) / want.norm; got.normErr != nil || e > tpTol {
							t.Errorf("rank %d: gradient norm %.8g (%v), unsharded %.8g (rel %.2g)", r, got.norm, got.normErr, want.norm, e)
						}
						for what, v := range map[string][2][]float32{"token losses": {got.tok, want.tok},
							"final hidden state": {got.hidden, want.hidden}, "logits": {got.logits, want.logits},
							"log-probabilities": {got.logp, want.logp}, "entropies": {got.ent, want.ent}} {
							if e := relErr(v[0], v[1]); e > tpTol {
								t.Errorf("rank %d: %s differ (rel %.2g)", r, what, e)
							}
						}
					}
					grads := gather(t, m, planSplit(t, m.Cfg, tp), ranks)
					var bad []string
					for key, g := range grads {
						e := relErr(g, want.grads[key])
						worst = max(worst, e)
						if e > tpTol {
							bad = append(bad, fmt.Sprintf("%s (rel %.2g)", key, e))
						}
					}
					if len(bad) > 0 {
						t.Errorf("gradients differ from the unsharded model's: %s", strings.Join(bad, ", "))
					}
					t.Logf("loss %.8g vs %.8g; worst gradient rel error %.2g over %d tensors", ranks[0].loss, want.loss, worst, len(grads))
				})
			}
		}
	}
}

// A layout whose local attention would pair query heads with the wrong KV
// head is refused on every rank before any collective.
func TestTPRefusesMisalignedHeads(t *testing.T) {
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":48,"intermediate_size":30,
		"num_hidden_layers":1,"num_attention_heads":6,"num_key_value_heads":2,"vocab_size":50,
		"max_position_embeddings":16,"tie_word_embeddings":true}`), "tp3")
	if err != nil {
		t.Fatal(err)
	}
	m := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), 1)
	ctx := context.Background()
	comms, err := dist.ConnectLocal(ctx, 3, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	split := planSplit(t, cfg, 3)
	for _, c := range comms {
		_, err := m.Shard(ctx, m.Backend(), c, split)
		if err == nil || !strings.Contains(err.Error(), "KV head") {
			t.Errorf("rank %d: Shard error %v, want one about KV heads", c.Rank(), err)
		}
		c.Close()
	}
}

// greedy decodes two sequences greedily for steps tokens through the
// paged decoder: a fresh prefill of each, a prefill continuing B's cached
// prefix, then batched single-token steps. It returns each sequence's
// generated tokens and every step's logits.
func greedy(m *qwen2.Model, steps int) ([][]int32, [][]float32, error) {
	kv := m.NewKVCache(8, 16)
	dec := m.NewDecoder(kv)
	defer dec.Close()
	a, b := kv.NewSeq(), kv.NewSeq()
	r := rand.New(rand.NewPCG(8, 9))
	prompt := func(n int) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32(r.IntN(m.Cfg.Vocab))
		}
		return p
	}
	var logs [][]float32
	var stepErr error
	step := func(in []qwen2.StepSeq) []int32 {
		next := make([]int32, len(in))
		lg, err := dec.Step(in, false)
		if err != nil {
			stepErr = errors.Join(stepErr, err)
			return next
		}
		logs = append(logs, slices.Clone(lg.F32))
		v := m.Cfg.Vocab
		for i := range next {
			row := lg.F32[i*v : (i+1)*v]
			next[i] = int32(slices.Index(row, slices.Max(row)))
		}
		return next
	}
	first := step([]qwen2.StepSeq{{Seq: a, Tokens: prompt(5)}, {Seq: b, Tokens: prompt(4)}})
	nextB := step([]qwen2.StepSeq{{Seq: b, Tokens: prompt(5)}})
	out := [][]int32{{first[0]}, {nextB[0]}}
	for range steps {
		next := step([]qwen2.StepSeq{{Seq: a, Tokens: out[0][len(out[0])-1:]}, {Seq: b, Tokens: out[1][len(out[1])-1:]}})
		out[0], out[1] = append(out[0], next[0]), append(out[1], next[1])
	}
	return out, logs, stepErr
}

func TestTPGreedyDecodeMatchesUnsharded(t *testing.T) {
	const steps = 24
	for name, m := range tpModels(t) {
		want, wantLogits, err := greedy(m, steps)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(want[0][1:], want[0][:len(want[0])-1]) {
			t.Fatalf("%s: greedy output %v repeats one token: too weak a check", name, want[0])
		}
		for _, tp := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/tp%d", name, tp), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				comms, err := dist.ConnectLocal(ctx, tp, 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				split := planSplit(t, m.Cfg, tp)
				toks := make([][][]int32, tp)
				logs := make([][][]float32, tp)
				errs := make([]error, tp)
				var wg sync.WaitGroup
				for r := range tp {
					wg.Go(func() {
						defer comms[r].Close()
						sh, err := m.Shard(ctx, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), comms[r], split)
						if err != nil {
							errs[r] = err
							return
						}
						toks[r], logs[r], errs[r] = greedy(sh, steps)
					})
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for r := range tp {
					if !slices.EqualFunc(toks[r], want, slices.Equal) {
						t.Errorf("rank %d generated %v, unsharded %v", r, toks[r], want)
					}
					for i := range wantLogits {
						worst = max(worst, relErr(logs[r][i], wantLogits[i]))
					}
				}
				if worst > tpTol {
					t.Errorf("decode logits differ from the unsharded model's (rel %.2g)", worst)
				}
				t.Logf("%d greedy tokens per sequence equal; worst logits rel error %.2g", steps+1, worst)
			})
		}
	}
}

// A shard whose peer is gone reports it through Err (naming the lost rank)
// instead of hanging or panicking, and skips its remaining collectives.
func TestTPLostPeer(t *testing.T) {
	m := tpModels(t)["random"]
	ctx := context.Background()
	comms, err := dist.ConnectLocal(ctx, 2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer comms[0].Close()
	sh, err := m.Shard(ctx, m.Backend(), comms[0], planSplit(t, m.Cfg, 2))
	if err != nil {
		t.Fatal(err)
	}
	comms[1].Close()
	b := tpBatch(m.Cfg.Vocab)
	a := sh.NewActs(b.B, b.T)
	sh.Forward(a, b)
	sh.Loss(a, b, true, 1)
	sh.Backward(a, b)
	var pe *dist.PeerError
	if err := sh.Err(); !errors.As(err, &pe) || pe.Rank != 1 {
		t.Fatalf("Err() = %v, want a lost peer error naming rank 1", err)
	}
	if _, err := sh.GradNorm(); err == nil {
		t.Fatal("GradNorm after a lost peer: no error")
	}
	if err := sh.Save(t.TempDir(), qwen2.SaveOptions{}); err == nil {
		t.Fatal("Save of a shard: no error")
	}
}
