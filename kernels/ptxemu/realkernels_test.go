package ptxemu_test

import (
	"encoding/binary"
	"math"
	"testing"

	"purpcode/kernels"
)

func embeddedPTX(t testing.TB, name string) []byte {
	t.Helper()
	src, err := kernels.KernelSourceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return compileCUDA(t, src.Name, src.Text)
}

// TestRealAdamWBitExact runs the project's adamw_step (every operation an
// explicitly rounded fp32 intrinsic) and compares bit for bit with the same
// formula in Go float32 arithmetic, which rounds each operation to nearest
// even as the PTX's .rn does. n is ragged (not a multiple of the block) and
// larger than the grid, so the grid-stride loop runs.
func TestRealAdamWBitExact(t *testing.T) {
	ptx := embeddedPTX(t, "adamw.cu")
	e := newEmu(t)
	k := e.kernel(string(ptx), "adamw_step")
	const n = 1000
	master, m, v, g := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range master {
		x := float64(i)
		master[i] = float32(math.Sin(x) * 0.1)
		m[i] = float32(math.Cos(x*0.7) * 1e-3)
		v[i] = float32(math.Abs(math.Sin(x*1.3)) * 1e-6)
		g[i] = float32(math.Sin(x*2.1) * 0.01)
	}
	if n > 3 {
		v[3], g[3] = 0, 0 // sqrt(0) and eps alone in the denominator
	}
	const gs, dm, b1c, b2, b2c, eps, ss, bc2 = float32(0.9), float32(0.999), float32(0.1), float32(0.999), float32(0.001), float32(1e-8), float32(1e-3), float32(0.3)
	ma, mb, vb, ga := e.f32s(master), e.f32s(m), e.f32s(v), e.f32s(g)
	wb := e.alloc(2 * n)
	e.mustLaunch(k, dim(3), dim(256), 0, u64p(ma), u64p(wb), u64p(mb), u64p(vb), u64p(ga), u64p(n),
		f32p(gs), f32p(dm), f32p(b1c), f32p(b2), f32p(b2c), f32p(eps), f32p(ss), f32p(bc2))
	gotP, gotM, gotV := e.readF32(ma, n), e.readF32(mb, n), e.readF32(vb, n)
	wraw := make([]byte, 2*n)
	if err := e.Read(wraw, wb); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		// explicit conversions forbid the compiler to fuse into FMAs
		gg := g[i] * gs
		p := master[i] * dm
		mm := m[i] + float32(b1c*(gg-m[i]))
		vv := float32(v[i]*b2) + float32(float32(b2c*gg)*gg)
		denom := float32(float32(math.Sqrt(float64(vv)))/bc2) + eps
		p = p - float32(ss*(mm/denom))
		if gotM[i] != mm || gotV[i] != vv || gotP[i] != p {
			t.Fatalf("element %d: got (p %v m %v v %v), want (%v %v %v)", i, gotP[i], gotM[i], gotV[i], p, mm, vv)
		}
		// bf16 round to nearest even of p (no NaN here)
		b := math.Float32bits(p)
		wantW := uint16((b + 0x7fff + (b>>16)&1) >> 16)
		if w := binary.LittleEndian.Uint16(wraw[2*i:]); w != wantW {
			t.Fatalf("element %d: bf16 %#04x want %#04x", i, w, wantW)
		}
	}
}

// TestRealRMSNormRuns runs rmsnorm_fwd at a ragged width (C not a multiple
// of the block) through its block_sum (shuffles, shared scratch, two
// barriers) and checks rstd against float64 within rsqrt.approx's bound.
func TestRealRMSNormRuns(t *testing.T) {
	ptx := embeddedPTX(t, "rmsnorm.cu")
	e := newEmu(t)
	k := e.kernel(string(ptx), "rmsnorm_fwd")
	const n, c = 3, 100
	x, w := make([]uint16, n*c), make([]uint16, c)
	for i := range x {
		x[i] = uint16(math.Float32bits(float32(math.Sin(float64(i)))) >> 16)
	}
	for i := range w {
		w[i] = 0x3f80 // 1.0
	}
	out, rstd := e.alloc(2*n*c), e.alloc(4*n)
	e.mustLaunch(k, dim(n), dim(64), 0, u64p(out), u64p(rstd), u64p(e.upload(bfBytes(x))), u64p(e.upload(bfBytes(w))),
		u32p(n), u32p(c), f32p(1e-6))
	got := e.readF32(rstd, n)
	for r := 0; r < n; r++ {
		var ss float64
		for j := 0; j < c; j++ {
			v := float64(math.Float32frombits(uint32(x[r*c+j]) << 16))
			ss += v * v
		}
		want := 1 / math.Sqrt(ss/c+1e-6)
		if math.Abs(float64(got[r])-want) > 4e-7*want {
			t.Errorf("row %d: rstd %v want %v", r, got[r], want)
		}
	}
}
