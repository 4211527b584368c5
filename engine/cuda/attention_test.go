package cuda

// Conformance of the attention ops with the CPU backend (the reference), on
// the PTX emulator (the first GPU with -cuda-device=real). Inputs are drawn,
// rounded to bf16 and uploaded; the CPU gets the rounded values widened, so
// the differences are the kernels' own arithmetic and the bf16 storage of
// their outputs. "of max" is relative to the largest magnitude of the CPU's
// output.
//
//	output       tolerance         why
//	out          1e-2 of max       bf16 output (2^-9); the tensor-core path (D=64) rounds P to
//	                               bf16 before P V
//	lse          2e-4 abs          fp32 online softmax with expf / exp2 vs the CPU's float64 sums
//	dq, dk, dv   1e-2 of max       dsum is taken from the bf16 output, and dS = P (dP - dsum)
//	                               cancels; bf16 outputs
//
// These are the tolerances of the kernels' own tests (engine/cudaemu_test.go);
// here they check the launches: grid, strides, GQA head mapping,
// cu_seqlens from segment ids, the lse layout and the overwrite of outputs.

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/kernels"
	"purpcode/kernels/cudatest"
)

// cudaDevice is the one -cuda-device flag of this package's test binary
// (internal and external tests alike): the PTX emulator by default, the
// first GPU with -cuda-device=real (scripts/gpu-check.sh).
var cudaDevice = flag.String("cuda-device", cudatest.Emulated, cudatest.FlagUsage)

// testPTX is one PTX cache for every backend this test binary opens, so a
// kernel source compiles once per run, not once per test (NVRTC takes
// seconds for the larger sources). TestMain gives it a fresh directory.
var testPTX = &kernels.PTXCache{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "purpcode-cuda-test-ptx")
	if err != nil {
		fmt.Fprintln(os.Stderr, "PTX cache:", err)
		os.Exit(1)
	}
	testPTX.Dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// OpenForTest opens the backend on the device -cuda-device names, closed
// when the test ends. A missing NVRTC stops the test through testref (a
// failure under CI=true); any other error, such as asking for a real GPU
// on a machine without one, fails it. Exported for the external tests
// (package cuda_test), which share this binary and its flag.
func OpenForTest(t testing.TB) *Backend {
	t.Helper()
	if _, err := kernels.LoadNVRTC(kernels.CUDALibOptions{}); err != nil {
		testref.Missing(t, testref.NeedNVRTC, err.Error())
	}
	spec := Emulated
	switch *cudaDevice {
	case cudatest.Emulated:
	case cudatest.Real:
		spec = "cuda"
	default:
		t.Fatalf("-cuda-device %q: want %q or %q", *cudaDevice, cudatest.Emulated, cudatest.Real)
	}
	b, err := Open(spec, Options{Cache: testPTX})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

func refCPU() *engine.CPU { return engine.NewDefaultCPU(engine.CPUOptions{}) }

func randVals(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// bf16Pair uploads vals, rounded to bf16, into a new device tensor and
// returns it with the CPU tensor of the rounded values.
func bf16Pair(b *Backend, vals []float32, shape ...int) (dev, host *engine.Tensor) {
	dev = b.Alloc(engine.BF16, shape...)
	b.Upload(dev, vals)
	return dev, engine.FromF32(kernels.FromBF16(kernels.BF16(vals)), shape...)
}

// download returns a device tensor's values widened to float32.
func download(b *Backend, t *engine.Tensor) []float32 {
	v := make([]float32, t.Numel())
	b.Download(v, t)
	return v
}

// checkOfMax fails unless every |got - want| is within tol of want's
// largest magnitude, and returns the worst error in that unit.
func checkOfMax(t *testing.T, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	scale = math.Max(scale, 1e-6)
	var worst float64
	for i, w := range want {
		e := math.Abs(float64(got[i])-float64(w)) / scale
		if !(e <= tol) {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g of max %g)", what, i, got[i], w, tol, scale)
		}
		worst = math.Max(worst, e)
	}
	return worst
}

// checkAbs fails unless every |got - want| <= tol and returns the worst.
func checkAbs(t *testing.T, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	var worst float64
	for i, w := range want {
		e := math.Abs(float64(got[i]) - float64(w))
		if !(e <= tol) {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g)", what, i, got[i], w, tol)
		}
		worst = math.Max(worst, e)
	}
	return worst
}

// packed returns segment ids for b rows of t tokens: row 0 holds documents
// of the given lengths (summing to t), every other row one document.
func packed(b, t int, lens ...int) []int32 {
	seg := make([]int32, 0, b*t)
	for id, n := range lens {
		for range n {
			seg = append(seg, int32(id))
		}
	}
	for row := 1; row < b; row++ {
		for range t {
			seg = append(seg, int32(len(lens)+row))
		}
	}
	return seg
}

func TestAttentionMatchesCPU(t *testing.T) {
	b := OpenForTest(t)
	cpu := refCPU()
	for i, c := range []struct {
		s   engine.AttnShape
		seg []int32
	}{
		{engine.AttnShape{B: 2, T: 24, Hq: 4, Hk: 2, D: 16}, packed(2, 24, 9, 1, 14)},
		{engine.AttnShape{B: 2, T: 20, Hq: 4, Hk: 2, D: 32}, nil},
		{engine.AttnShape{B: 2, T: 40, Hq: 4, Hk: 2, D: 64}, packed(2, 40, 25, 15)},
	} {
		s := c.s
		t.Run(fmt.Sprintf("D%d_Hq%d_Hk%d_B%d_T%d_packed%v", s.D, s.Hq, s.Hk, s.B, s.T, c.seg != nil), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			n, wq, wk := s.B*s.T, s.Hq*s.D, s.Hk*s.D
			q, qc := bf16Pair(b, randVals(r, n*wq, 1), n, wq)
			k, kc := bf16Pair(b, randVals(r, n*wk, 1), n, wk)
			v, vc := bf16Pair(b, randVals(r, n*wk, 1), n, wk)
			dout, doutc := bf16Pair(b, randVals(r, n*wq, 1), n, wq)

			outc, lsec := engine.New(n, wq), engine.New(s.B*s.Hq*s.T)
			cpu.AttentionForward(outc, lsec, qc, kc, vc, c.seg, s)
			out, lse := b.Alloc(engine.BF16, n, wq), b.Alloc(engine.F32, s.B*s.Hq*s.T)
			// Outputs start as garbage: every element must be written.
			b.Upload(out, randVals(r, n*wq, 100))
			b.AttentionForward(out, lse, q, k, v, c.seg, s)
			outG := download(b, out)
			eo := checkOfMax(t, "out", outG, outc.F32, 1e-2)
			el := checkAbs(t, "lse", download(b, lse), lsec.F32, 2e-4)

			// The backward gets the device's forward outputs on both sides
			// (rounded to bf16 for the CPU), so it is checked on its own.
			outc = engine.FromF32(outG, n, wq)
			dqc, dkc, dvc := engine.New(n, wq), engine.New(n, wk), engine.New(n, wk)
			cpu.AttentionBackward(dqc, dkc, dvc, doutc, outc, lsec, qc, kc, vc, c.seg, s)
			dq, dk, dv := b.Alloc(engine.BF16, n, wq), b.Alloc(engine.BF16, n, wk), b.Alloc(engine.BF16, n, wk)
			for _, g := range []*engine.Tensor{dq, dk, dv} {
				b.Upload(g, randVals(r, g.Numel(), 100))
			}
			b.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, c.seg, s)
			eq := checkOfMax(t, "dq", download(b, dq), dqc.F32, 1e-2)
			ek := checkOfMax(t, "dk", download(b, dk), dkc.F32, 1e-2)
			ev := checkOfMax(t, "dv", download(b, dv), dvc.F32, 1e-2)
			t.Logf("out %.2g of max, lse %.2g abs; dq %.2g dk %.2g dv %.2g of max", eo, el, eq, ek, ev)
		})
	}
}

// TestAttentionRejectsBadShapes: a mismatch is a panic naming the shapes,
// raised before any launch.
func TestAttentionRejectsBadShapes(t *testing.T) {
	b := OpenForTest(t)
	s := engine.AttnShape{B: 1, T: 4, Hq: 3, Hk: 2, D: 16}
	q, k := b.Alloc(engine.BF16, 4, 48), b.Alloc(engine.BF16, 4, 32)
	out, lse := b.Alloc(engine.BF16, 4, 48), b.Alloc(engine.F32, 12)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "AttentionForward") || !strings.Contains(fmt.Sprint(r), "Hq:3") {
			t.Fatalf("panic %v, want one naming the op and the shape", r)
		}
	}()
	b.AttentionForward(out, lse, q, k, k, nil, s)
}
