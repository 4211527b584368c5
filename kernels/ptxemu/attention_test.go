package ptxemu_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"purpcode/kernels"
	"purpcode/kernels/ptxemu"
)

// attnCase is the speed shape: B=2, T=128, 4 query heads, 2 kv
// heads, D=64, run through the project's real attention kernels.
type attnCase struct {
	b, t, hq, hk, d int
	q, k, v         []uint16 // bf16 bits, rows of hq*d / hk*d
}

func newAttnCase(b, t, hq, hk, d int) *attnCase {
	rng := rand.New(rand.NewPCG(1, 2))
	bf := func(n int) []uint16 {
		out := make([]uint16, n)
		for i := range out {
			out[i] = uint16(math.Float32bits(float32(rng.NormFloat64())) >> 16)
		}
		return out
	}
	n := b * t
	return &attnCase{b: b, t: t, hq: hq, hk: hk, d: d, q: bf(n * hq * d), k: bf(n * hk * d), v: bf(n * hk * d)}
}

func bfBytes(v []uint16) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], x)
	}
	return out
}

func (e *emu) upload(b []byte) uint64 {
	a := e.alloc(len(b))
	if err := e.Write(a, b); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// reference is causal GQA attention in float64 (one sequence per batch row).
func (c *attnCase) reference() []float64 {
	f := func(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }
	out := make([]float64, c.b*c.t*c.hq*c.d)
	scale := 1 / math.Sqrt(float64(c.d))
	for r := 0; r < c.b*c.t; r++ {
		s0 := r / c.t * c.t
		for h := 0; h < c.hq; h++ {
			hk := h / (c.hq / c.hk)
			var w []float64
			mx := math.Inf(-1)
			for j := s0; j <= r; j++ {
				var s float64
				for d := 0; d < c.d; d++ {
					s += f(c.q[(r*c.hq+h)*c.d+d]) * f(c.k[(j*c.hk+hk)*c.d+d])
				}
				w = append(w, s*scale)
				mx = math.Max(mx, s*scale)
			}
			var l float64
			for i := range w {
				w[i] = math.Exp(w[i] - mx)
				l += w[i]
			}
			for d := 0; d < c.d; d++ {
				var acc float64
				for i, j := 0, s0; j <= r; i, j = i+1, j+1 {
					acc += w[i] * f(c.v[(j*c.hk+hk)*c.d+d])
				}
				out[(r*c.hq+h)*c.d+d] = acc / l
			}
		}
	}
	return out
}

// prepare loads the PTX on a fresh device, uploads the inputs and returns
// the launch of attn_fwd_mma_d64 (mma) or attn_fwd_simt, and a reader of
// the output.
func (c *attnCase) prepare(t testing.TB, ptx []byte, mma bool) (launch func() (ptxemu.Stats, error), output func() []float64) {
	e := &emu{t: t, Device: ptxemu.NewDevice(ptxemu.Options{})}
	mod, err := e.LoadModule(ptx)
	if err != nil {
		t.Fatal(err)
	}
	ntok := c.b * c.t
	cu, tiles := kernels.AttnVarlen(nil, c.b, c.t, kernels.AttnTileRows)
	i32 := func(v []int32) []byte {
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(x))
		}
		return out
	}
	q, k, v := e.upload(bfBytes(c.q)), e.upload(bfBytes(c.k)), e.upload(bfBytes(c.v))
	out := e.alloc(2 * ntok * c.hq * c.d)
	lse := e.alloc(4 * ntok * c.hq)
	cua := e.upload(i32(cu))
	scale := f32p(float32(1 / math.Sqrt(float64(c.d))))
	ldq, ldk := u64p(uint64(c.hq*c.d)), u64p(uint64(c.hk*c.d))
	var name string
	var args [][]byte
	var grid, block [3]uint32
	var dyn uint32
	if mma {
		name = "attn_fwd_mma_d64"
		args = [][]byte{u64p(out), ldq, u64p(lse), u64p(q), ldq, u64p(k), u64p(v), ldk, u64p(cua), u64p(e.upload(i32(tiles))),
			u32p(uint32(ntok)), u32p(uint32(c.t)), u32p(uint32(c.hq)), u32p(uint32(c.hk)), scale}
		grid, block, dyn = [3]uint32{uint32(len(tiles) / 2), uint32(c.hq), 1}, dim(128), uint32(kernels.AttnMMASharedBytes(c.d))
	} else {
		name = "attn_fwd_simt"
		args = [][]byte{u64p(out), ldq, u64p(lse), u64p(q), ldq, u64p(k), u64p(v), ldk, u64p(cua), u32p(uint32(len(cu) - 1)),
			u32p(uint32(ntok)), u32p(uint32(c.t)), u32p(uint32(c.hq)), u32p(uint32(c.hk)), u32p(uint32(c.d)), scale}
		grid, block = [3]uint32{uint32((ntok + 3) / 4), uint32(c.hq), 1}, dim(128)
	}
	kern, err := mod.Kernel(name)
	if err != nil {
		t.Fatal(err)
	}
	launch = func() (ptxemu.Stats, error) { return e.Launch(kern, grid, block, dyn, args) }
	output = func() []float64 {
		raw := make([]byte, 2*ntok*c.hq*c.d)
		if err := e.Read(raw, out); err != nil {
			t.Fatal(err)
		}
		res := make([]float64, len(raw)/2)
		for i := range res {
			res[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16))
		}
		return res
	}
	return launch, output
}

func attentionPTX(t testing.TB) []byte {
	t.Helper()
	src, err := kernels.KernelSourceByName("attention.cu")
	if err != nil {
		t.Fatal(err)
	}
	return compileCUDA(t, src.Name, src.Text)
}

// TestRealAttentionKernelsRun runs the project's tensor-core and SIMT
// attention forward kernels at the speed shape with every checker
// on, and checks both against float64 attention. (The per-kernel tests
// against the engine's CPU ops live in package kernels.)
func TestRealAttentionKernelsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real kernels")
	}
	ptx := attentionPTX(t)
	c := newAttnCase(2, 128, 4, 2, 64)
	want := c.reference()
	for _, mma := range []bool{true, false} {
		launch, output := c.prepare(t, ptx, mma)
		start := time.Now()
		st, err := launch()
		el := time.Since(start)
		if err != nil {
			t.Fatalf("mma=%v: %v", mma, err)
		}
		got := output()
		var maxErr float64
		for i := range want {
			maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
		}
		t.Logf("mma=%v: %d instructions, %d threads in %v (%.1f M instr/s), max |err| %.3g", mma, st.Instructions, st.Threads, el, float64(st.Instructions)/el.Seconds()/1e6, maxErr)
		// bf16 output (relative rounding 2^-9 of values below ~3) and, for
		// mma, P rounded to bf16 before P*V
		if maxErr > 0.03 {
			t.Errorf("mma=%v: max abs error %v", mma, maxErr)
		}
	}
}

// BenchmarkAttentionMMA reports the interpreter's speed on the real
// tensor-core attention kernel (B=2, T=128, Hq=4, Hk=2, D=64).
func BenchmarkAttentionMMA(b *testing.B) { benchAttention(b, true) }

// BenchmarkAttentionSIMT: the same shape through the SIMT kernel (shuffle
// heavy: one warp reduction per key).
func BenchmarkAttentionSIMT(b *testing.B) { benchAttention(b, false) }

func benchAttention(b *testing.B, mma bool) {
	ptx := attentionPTX(b)
	c := newAttnCase(2, 128, 4, 2, 64)
	launch, _ := c.prepare(b, ptx, mma)
	reportRate(b, func() ptxemu.Stats {
		st, err := launch()
		if err != nil {
			b.Fatal(err)
		}
		return st
	})
}
