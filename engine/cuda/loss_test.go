package cuda

// Conformance of the fused lm-head ops (LMHeadLoss, LMHeadTokenStats,
// LMHeadTokenGrad) with the CPU backend, on the PTX emulator (the first GPU
// with -cuda-device=real), on the same bf16-rounded h and w (the CPU gets
// them widened).
//
//	output               tolerance               why
//	loss sum             1e-5 relative           logits: exact bf16 products summed in fp32, as the
//	                                             CPU's sgemm; fp32 logsumexp (expf) vs float64
//	tokLoss, logp, ent   2e-5 abs + 1e-5 rel     as xent_fwd_bwd / policy_rows' own tests
//	dh                   1e-2 of max             dlogits rounded to bf16 (2^-9) for the GEMM
//	                                             operand, bf16 output
//	dw                   1e-2 of max             the same bf16 dlogits; fp32 accumulation over rows
//
// Ignored rows (-100) must be exactly 0 in tokLoss, logp, ent and dh. dw
// starts non-zero on both sides (it is accumulated into); dh starts as
// garbage on the device (it is overwritten). Chunks of 16 rows make a
// 40-row batch span three chunks (the chunk loop and a last partial chunk);
// one test runs the exported op at its real chunk size on 276 rows.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"purpcode/engine"
)

const (
	testVocab = 256
	testC     = 32
	testChunk = 16
)

// headCase is one batch of targets: scattered ignored rows (gathered
// path), an ignored prefix and suffix (contiguous path, in place), none
// ignored, all ignored.
type headCase struct {
	name    string
	targets []int32
}

func headCases(r *rand.Rand, n int) []headCase {
	draw := func(ignore func(i int) bool) []int32 {
		tg := make([]int32, n)
		for i := range tg {
			tg[i] = int32(r.IntN(testVocab))
			if ignore(i) {
				tg[i] = engine.IgnoreIndex
			}
		}
		return tg
	}
	return []headCase{
		{"scattered", draw(func(i int) bool { return i%5 == 1 || i%7 == 3 })},
		{"prefix_suffix", draw(func(i int) bool { return i < 6 || i >= n-3 })},
		{"none_ignored", draw(func(int) bool { return false })},
		{"all_ignored", draw(func(int) bool { return true })},
	}
}

// headInputs draws h (N, C) and w (V, C), rounded to bf16, on both
// backends; w's scale gives logits of about unit spread.
func headInputs(b *Backend, r *rand.Rand, n int) (h, hc, w, wc *engine.Tensor) {
	h, hc = bf16Pair(b, randVals(r, n*testC, 1), n, testC)
	w, wc = bf16Pair(b, randVals(r, testVocab*testC, 0.3), testVocab, testC)
	return h, hc, w, wc
}

// gradBuffers returns dh (garbage, device), dw (the same non-zero start on
// both sides) for an accumulate/overwrite check.
func gradBuffers(b *Backend, r *rand.Rand, n int) (dh, dw, dwc *engine.Tensor) {
	dh = b.Alloc(engine.BF16, n, testC)
	b.Upload(dh, randVals(r, n*testC, 100))
	start := randVals(r, testVocab*testC, 0.01)
	dw = b.Alloc(engine.F32, testVocab, testC)
	b.Upload(dw, start)
	return dh, dw, engine.FromF32(append([]float32(nil), start...), testVocab, testC)
}

// checkIgnoredRows fails unless the rows of dh (N, C) whose target is
// ignored are exactly zero.
func checkIgnoredRows(t *testing.T, dh []float32, targets []int32) {
	t.Helper()
	for i, tg := range targets {
		if tg != engine.IgnoreIndex {
			continue
		}
		for j := range testC {
			if v := dh[i*testC+j]; v != 0 {
				t.Fatalf("dh[%d, %d] = %g on an ignored row, want 0", i, j, v)
			}
		}
	}
}

// checkRows compares per-row values within 2e-5 abs + 1e-5 rel.
func checkRows(t *testing.T, what string, got, want []float32) float64 {
	t.Helper()
	var worst float64
	for i, w := range want {
		e := math.Abs(float64(got[i]) - float64(w))
		if !(e <= 2e-5+1e-5*math.Abs(float64(w))) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], w)
		}
		worst = math.Max(worst, e)
	}
	return worst
}

func TestLMHeadLossMatchesCPU(t *testing.T) {
	b := OpenForTest(t)
	cpu := refCPU()
	const n = 40
	r := rand.New(rand.NewPCG(1, 2))
	h, hc, w, wc := headInputs(b, r, n)
	for _, c := range headCases(r, n) {
		t.Run(c.name, func(t *testing.T) {
			const scale = 1.0 / 37
			dh, dw, dwc := gradBuffers(b, r, n)
			tok := b.Alloc(engine.F32, n)
			b.Upload(tok, randVals(r, n, 100))
			dhc, tokc := engine.New(n, testC), engine.New(n)
			wantSum, wantCount := cpu.LMHeadLoss(hc, wc, c.targets, tokc, dhc, dwc, scale)
			sum, count := b.lmHeadLoss(testChunk, h, w, c.targets, tok, dh, dw, scale)
			if count != wantCount {
				t.Fatalf("count %d, want %d", count, wantCount)
			}
			if !(math.Abs(sum-wantSum) <= 1e-5*math.Abs(wantSum)) {
				t.Fatalf("loss sum %.9g, want %.9g", sum, wantSum)
			}
			el := checkRows(t, "tokLoss", download(b, tok), tokc.F32)
			dhG := download(b, dh)
			checkIgnoredRows(t, dhG, c.targets)
			eh := checkOfMax(t, "dh", dhG, dhc.F32, 1e-2)
			ew := checkOfMax(t, "dw", download(b, dw), dwc.F32, 1e-2)
			t.Logf("sum %.6g (%d targets); tokLoss %.2g abs; dh %.2g dw %.2g of max", sum, count, el, eh, ew)

			// Without gradients, through the exported op (one chunk).
			sum2, count2 := b.LMHeadLoss(h, w, c.targets, nil, nil, nil, scale)
			if count2 != count || !(math.Abs(sum2-wantSum) <= 1e-5*math.Abs(wantSum)) {
				t.Fatalf("forward only: sum %.9g count %d, want %.9g %d", sum2, count2, wantSum, wantCount)
			}
		})
	}
}

// TestLMHeadLossExportedChunks runs the exported op, with its real chunk
// size, on a batch one partial chunk longer than it.
func TestLMHeadLossExportedChunks(t *testing.T) {
	b := OpenForTest(t)
	n := lossChunk + 20
	r := rand.New(rand.NewPCG(9, 10))
	h, hc, w, wc := headInputs(b, r, n)
	tg := headCases(r, n)[0].targets
	dh, dw, dwc := gradBuffers(b, r, n)
	dhc := engine.New(n, testC)
	wantSum, wantCount := refCPU().LMHeadLoss(hc, wc, tg, nil, dhc, dwc, 1)
	sum, count := b.LMHeadLoss(h, w, tg, nil, dh, dw, 1)
	if count != wantCount || !(math.Abs(sum-wantSum) <= 1e-5*math.Abs(wantSum)) {
		t.Fatalf("sum %.9g count %d, want %.9g %d", sum, count, wantSum, wantCount)
	}
	dhG := download(b, dh)
	checkIgnoredRows(t, dhG, tg)
	t.Logf("dh %.2g dw %.2g of max", checkOfMax(t, "dh", dhG, dhc.F32, 1e-2), checkOfMax(t, "dw", download(b, dw), dwc.F32, 1e-2))
}

func TestLMHeadTokenStatsMatchesCPU(t *testing.T) {
	b := OpenForTest(t)
	cpu := refCPU()
	const n = 40
	r := rand.New(rand.NewPCG(3, 4))
	h, hc, w, wc := headInputs(b, r, n)
	for _, c := range headCases(r, n)[:2] {
		t.Run(c.name, func(t *testing.T) {
			want := engine.TokenStats{LogProb: make([]float32, n), Entropy: make([]float32, n)}
			cpu.LMHeadTokenStats(hc, wc, c.targets, want)
			// Stale values in the slots must be overwritten, zeros included.
			got := engine.TokenStats{LogProb: randVals(r, n, 9), Entropy: randVals(r, n, 9)}
			b.lmHeadTokenStats(testChunk, h, w, c.targets, got)
			el := checkRows(t, "logp", got.LogProb, want.LogProb)
			ee := checkRows(t, "entropy", got.Entropy, want.Entropy)
			lp := randVals(r, n, 9)
			b.LMHeadTokenStats(h, w, c.targets, engine.TokenStats{LogProb: lp})
			checkRows(t, "logp without entropy", lp, want.LogProb)
			t.Logf("logp %.2g, entropy %.2g abs", el, ee)
		})
	}
}

func TestLMHeadTokenGradMatchesCPU(t *testing.T) {
	b := OpenForTest(t)
	cpu := refCPU()
	const n = 40
	r := rand.New(rand.NewPCG(5, 6))
	h, hc, w, wc := headInputs(b, r, n)
	for _, c := range headCases(r, n)[:2] {
		for _, withEnt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s_entropy%v", c.name, withEnt), func(t *testing.T) {
				a := randVals(r, n, 0.1)
				var e []float32
				if withEnt {
					e = randVals(r, n, 0.05)
				}
				dh, dw, dwc := gradBuffers(b, r, n)
				dhc := engine.New(n, testC)
				cpu.LMHeadTokenGrad(hc, wc, c.targets, a, e, dhc, dwc)
				b.lmHeadTokenGrad(testChunk, h, w, c.targets, a, e, dh, dw)
				dhG := download(b, dh)
				checkIgnoredRows(t, dhG, c.targets)
				eh := checkOfMax(t, "dh", dhG, dhc.F32, 1e-2)
				ew := checkOfMax(t, "dw", download(b, dw), dwc.F32, 1e-2)
				t.Logf("dh %.2g dw %.2g of max", eh, ew)
			})
		}
	}
}

// TestLMHeadRejectsBadTarget: a target outside the vocabulary is a panic
// naming the row, not a silent zero.
func TestLMHeadRejectsBadTarget(t *testing.T) {
	b := OpenForTest(t)
	r := rand.New(rand.NewPCG(7, 8))
	h, _, w, _ := headInputs(b, r, 4)
	for _, op := range []struct {
		name string
		call func(tg []int32)
	}{
		{"LMHeadLoss", func(tg []int32) { b.LMHeadLoss(h, w, tg, nil, nil, nil, 1) }},
		{"LMHeadTokenStats", func(tg []int32) { b.LMHeadTokenStats(h, w, tg, engine.TokenStats{LogProb: make([]float32, 4)}) }},
		{"LMHeadTokenGrad", func(tg []int32) {
			b.LMHeadTokenGrad(h, w, tg, make([]float32, 4), nil, b.Alloc(engine.BF16, 4, testC), nil)
		}},
	} {
		t.Run(op.name, func(t *testing.T) {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, op.name) || !strings.Contains(msg, "target 256 at row 2") {
					t.Fatalf("panic %q, want one naming %s, the target and its row", msg, op.name)
				}
			}()
			op.call([]int32{1, engine.IgnoreIndex, testVocab, 3})
		})
	}
}
