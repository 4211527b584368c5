package cuda_test

// Conformance of the CUDA backend with the CPU backend on whole models
// (issue 15, must-hold 1): the embedded base model (testdata/base-model,
// 4 layers, hidden 128, GQA 4/2, head dim 32, q/k/v bias, vocab 1536) run
// through model/qwen2 and train/sft on both backends. The device is the PTX
// emulator by default and the first GPU with -cuda-device=real
// (scripts/gpu-check.sh).
//
// Tolerances (the device stores activations and compute weights in bf16,
// 2^-9 relative rounding per value, and accumulates in fp32; the CPU is
// float32 throughout):
//
//	forward logits      max |Δ| <= 2e-2 of max |logit|   bf16 activations through 4 layers
//	loss                relative 5e-3                     mean over tokens averages the rounding
//	every gradient      relative L2 norm 3e-2             bf16 activation gradients
//	AdamW step          master bit-identical, compute = bf16(master)   same fp32 ops in the same order
//	20 SFT steps        each step's loss within 1% of the CPU's
//	greedy decoding     32 tokens identical, or the first divergence at a near-tie of the CPU's logits
//	                    (top-2 gap below the forward tolerance), shown in the log

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/model/qwen2"
	"purpcode/train"
	"purpcode/train/sft"
)

var baseModel = filepath.Join("..", "..", "testdata", "base-model")

// models loads the base model on the CPU and on the device.
func models(t *testing.T) (*qwen2.Model, *qwen2.Model, *cuda.Backend) {
	t.Helper()
	dev := cuda.OpenForTest(t)
	mc, err := qwen2.Load(baseModel, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	md, err := qwen2.Load(baseModel, dev)
	if err != nil {
		t.Fatal(err)
	}
	return mc, md, dev
}

// batch is B rows of T random tokens; the second row packs two documents
// and some targets are ignored, so segments and IgnoreIndex are exercised.
func batch(cfg *qwen2.Config, b, t int, seed uint64) *qwen2.Batch {
	r := rand.New(rand.NewPCG(seed, 7))
	n := b * t
	ids, tg, seg := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(cfg.Vocab))
	}
	for i := range tg {
		tg[i] = engine.IgnoreIndex
		if (i+1)%t != 0 && r.IntN(8) != 0 {
			tg[i] = ids[i+1]
		}
		if i/t == 1 && i%t >= t/2 {
			seg[i] = 1
		}
	}
	return &qwen2.Batch{B: b, T: t, IDs: ids, Targets: tg, Seg: seg}
}

func relNorm(got, want []float32) float64 {
	var d, w float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		w += float64(want[i]) * float64(want[i])
	}
	if w == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / w)
}

func absNorm(got, want []float32) float64 {
	var d float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
	}
	return math.Sqrt(d)
}

func logits(m *qwen2.Model, a *qwen2.Acts, n int) []float32 {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	out := engine.New(n, m.Cfg.Vocab)
	m.Logits(a, rows, out)
	return out.F32
}

func TestForwardBackwardMatchCPU(t *testing.T) {
	mc, md, _ := models(t)
	b := batch(mc.Cfg, 2, 24, 1)
	n := b.B * b.T
	ac, ad := mc.NewActs(b.B, b.T), md.NewActs(b.B, b.T)
	mc.Forward(ac, b)
	md.Forward(ad, b)

	zc, zd := logits(mc, ac, n), logits(md, ad, n)
	var maxAbs, maxErr float64
	for i := range zc {
		maxAbs = math.Max(maxAbs, math.Abs(float64(zc[i])))
		maxErr = math.Max(maxErr, math.Abs(float64(zd[i])-float64(zc[i])))
	}
	t.Logf("logits: max |Δ| %.3g of max |logit| %.3g (%.2e relative)", maxErr, maxAbs, maxErr/maxAbs)
	if maxErr > 2e-2*maxAbs {
		t.Errorf("logits differ by %.3g, above 2e-2 of %.3g", maxErr, maxAbs)
	}

	scale := float32(1) / float32(n)
	lc, nc := mc.Loss(ac, b, true, scale)
	ld, nd := md.Loss(ad, b, true, scale)
	if nc != nd {
		t.Fatalf("counted targets %d on the device, %d on the CPU", nd, nc)
	}
	rel := math.Abs(ld-lc) / lc
	t.Logf("loss: cpu %.6f, device %.6f (%.2e relative)", lc/float64(nc), ld/float64(nd), rel)
	if rel > 5e-3 {
		t.Errorf("loss differs by %.3g relative, above 5e-3", rel)
	}
	tokC, tokD := ac.TokenLoss(), ad.TokenLoss()
	if e := relNorm(tokD, tokC); e > 1e-2 {
		t.Errorf("per-token losses differ by %.3g relative norm", e)
	}

	mc.Backward(ac, b)
	md.Backward(ad, b)
	md.P.Pull()
	worst, worstName := 0.0, ""
	global := mc.P.GradNorm()
	for i, pc := range mc.P.List {
		pd := md.P.List[i]
		e := relNorm(pd.G.F32, pc.G.F32)
		if strings.HasSuffix(pc.Name, "k_proj.bias") {
			// The key bias's gradient is a sum over tokens of RoPE-rotated
			// dk that nearly cancels (softmax is invariant to a shift shared
			// by a query's scores; only RoPE keeps it from cancelling
			// exactly), so it is ~1e-3 of the global norm and its relative
			// error measures the cancellation, not the backend. It is held
			// to the same bound in absolute terms, against the global norm.
			e = absNorm(pd.G.F32, pc.G.F32) / global
			t.Logf("%s: |g| cpu %.3g (global %.3g), |Δ| %.3g of global", pc.Name, absNorm(pc.G.F32, make([]float32, len(pc.G.F32))), global, e)
		}
		if e > worst {
			worst, worstName = e, pc.Name
		}
		if e > 3e-2 {
			t.Errorf("gradient of %s differs by %.3g relative norm, above 3e-2", pc.Name, e)
		}
	}
	t.Logf("gradients: worst relative norm %.3g (%s) over %d tensors", worst, worstName, len(mc.P.List))
	if gc, gd := mc.P.GradNorm(), md.P.GradNorm(); math.Abs(gd-gc) > 3e-2*gc {
		t.Errorf("global grad norm %.6g on the device, %.6g on the CPU", gd, gc)
	}
}

// TestAdamWStepMatchesCPU gives both optimizers the CPU's gradients: the
// device's fp32 master weights must come out bit-identical and its bf16
// compute weights must be their rounding.
func TestAdamWStepMatchesCPU(t *testing.T) {
	mc, md, dev := models(t)
	b := batch(mc.Cfg, 1, 16, 2)
	ac := mc.NewActs(b.B, b.T)
	mc.Forward(ac, b)
	mc.Loss(ac, b, true, 1.0/16)
	mc.Backward(ac, b)
	dev.Upload(md.P.Weights.Grad, mc.P.Grad)

	oc := train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	for _, m := range []*qwen2.Model{mc, md} {
		opt, err := train.NewOptimizer(oc, m)
		if err != nil {
			t.Fatal(err)
		}
		opt.Step(m.P.Weights, 1e-3)
	}
	md.P.Pull()
	for i, v := range mc.P.Flat {
		if math.Float32bits(v) != math.Float32bits(md.P.Flat[i]) {
			t.Fatalf("master weight %d: device %v, cpu %v (want bit-identical)", i, md.P.Flat[i], v)
		}
	}
	compute := make([]float32, len(mc.P.Flat))
	dev.Download(compute, md.P.Weights.Compute)
	want := engine.FromF32(mc.P.Flat, len(mc.P.Flat)).Convert(engine.BF16).ToF32()
	for i, v := range want {
		if v != compute[i] {
			t.Fatalf("compute weight %d: %v, want bf16(master) %v", i, compute[i], v)
		}
	}
}

// TestSFTLossCurve trains 20 AdamW steps on both backends from the same
// weights over the same micro-batches.
func TestSFTLossCurve(t *testing.T) {
	mc, md, _ := models(t)
	const steps, bsz, seq = 20, 2, 16
	var micro []*qwen2.Batch
	for i := 0; i < 4; i++ {
		micro = append(micro, batch(mc.Cfg, bsz, seq, uint64(10+i)))
	}
	oc := train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01}
	curve := func(m *qwen2.Model) []float64 {
		opt, err := train.NewOptimizer(oc, m)
		if err != nil {
			t.Fatal(err)
		}
		tr := sft.NewTrainer(m, opt, bsz, seq, 1.0)
		var out []float64
		for s := 0; s < steps; s++ {
			r := tr.Step([]*qwen2.Batch{micro[s%len(micro)]}, 1e-3)
			out = append(out, r.Loss)
		}
		return out
	}
	lc, ld := curve(mc), curve(md)
	worst := 0.0
	for s := range lc {
		rel := math.Abs(ld[s]-lc[s]) / lc[s]
		worst = math.Max(worst, rel)
		if rel > 0.01 {
			t.Errorf("step %d: loss %.5f on the device, %.5f on the CPU (%.2g relative, above 1%%)", s+1, ld[s], lc[s], rel)
		}
	}
	t.Logf("20 SFT steps: loss %.4f -> %.4f (cpu), %.4f -> %.4f (device), worst step %.2e relative",
		lc[0], lc[steps-1], ld[0], ld[steps-1], worst)
	if lc[steps-1] >= lc[0] {
		t.Errorf("the CPU's loss did not fall (%.4f -> %.4f): the comparison would prove little", lc[0], lc[steps-1])
	}
}

// greedy extends prompt by n tokens, recomputing the whole sequence each
// step, and returns the tokens with the CPU-independent top-2 gap of each
// step's logits.
func greedy(m *qwen2.Model, prompt []int32, n int) (toks []int32, gaps []float64) {
	seq := append([]int32(nil), prompt...)
	for range n {
		t := len(seq)
		a := m.NewActs(1, t)
		m.Forward(a, &qwen2.Batch{B: 1, T: t, IDs: seq})
		out := engine.New(1, m.Cfg.Vocab)
		m.Logits(a, []int{t - 1}, out)
		best, second := 0, -1
		for j, v := range out.F32 {
			if v > out.F32[best] {
				best, second = j, best
			} else if j != best && (second < 0 || v > out.F32[second]) {
				second = j
			}
		}
		seq = append(seq, int32(best))
		toks = append(toks, int32(best))
		gaps = append(gaps, float64(out.F32[best]-out.F32[second]))
	}
	return toks, gaps
}

// TestGreedyMatchesCPU decodes 32 tokens greedily from prompts of the base
// model's vocabulary on both backends.
func TestGreedyMatchesCPU(t *testing.T) {
	mc, md, _ := models(t)
	prompts := [][]int32{{1533, 17, 230, 940, 12}, {1533, 400, 401, 402, 403, 404, 405, 406}}
	for pi, p := range prompts {
		tc, gaps := greedy(mc, p, 32)
		td, _ := greedy(md, p, 32)
		for i := range tc {
			if tc[i] == td[i] {
				continue
			}
			t.Logf("prompt %d: first divergence at token %d (cpu %d, device %d); cpu top-2 gap %.4g", pi, i, tc[i], td[i], gaps[i])
			if gaps[i] > 0.05 {
				t.Errorf("prompt %d: token %d differs (cpu %d, device %d) with a clear cpu margin %.4g", pi, i, tc[i], td[i], gaps[i])
			}
			break
		}
	}
}

// TestMemoryReport checks the backend's accounting against the sizes the
// model and optimizer must hold: fp32 master + bf16 compute weights, fp32
// gradients, two fp32 AdamW moments, and activations and a KV pool that
// return to zero live bytes when freed.
func TestMemoryReport(t *testing.T) {
	_, md, dev := models(t)
	n := int64(md.P.Count())
	if _, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, md); err != nil {
		t.Fatal(err)
	}
	md.NewActs(1, 8)
	kv := md.NewKVCache(4, 8)
	kv.Close()
	p := dev.PeakBytes()
	t.Logf("peak bytes: %v", p)
	for _, c := range []struct {
		cat  string
		want int64
	}{{engine.MemWeights, 6 * n}, {engine.MemGrads, 4 * n}, {engine.MemOptimizer, 8 * n}} {
		if p[c.cat] != c.want {
			t.Errorf("%s: peak %d bytes, want %d for %d parameters", c.cat, p[c.cat], c.want, n)
		}
	}
	kvWant := int64(md.Cfg.Layers * 2 * 8 * md.Cfg.KVHeads * 4 * md.Cfg.HeadDim * 2)
	if p[engine.MemKVCache] != kvWant {
		t.Errorf("kv_cache: peak %d bytes, want %d", p[engine.MemKVCache], kvWant)
	}
	if p[engine.MemActivations] == 0 || p["total"] < 18*n+kvWant+p[engine.MemActivations] {
		t.Errorf("activations %d, total %d: inconsistent with the parts", p[engine.MemActivations], p["total"])
	}
}
