package ptxemu_test

import (
	"math"
	"testing"
)

// The CUDA math library calls the kernels use (expf, logf, log2f, exp2f,
// sqrtf, division, tanhf, double exp/log), as NVRTC expands them into fma.rm,
// cvt.sat, ex2.approx.ftz, rcp.approx.ftz.f64 and friends. Their results
// through the interpreter must be within the library's documented ulp
// bounds of the true value.
const mathSrc = `
extern "C" __global__ void mathfns(const float *x, float *out, double *outd, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) return;
	float v = x[i];
	out[8 * i + 0] = expf(v);
	out[8 * i + 1] = logf(fabsf(v) + 1e-3f);
	out[8 * i + 2] = exp2f(v);
	out[8 * i + 3] = log2f(fabsf(v) + 1e-3f);
	out[8 * i + 4] = sqrtf(fabsf(v));
	out[8 * i + 5] = 1.f / (v + 0.5f);
	out[8 * i + 6] = tanhf(v);
	out[8 * i + 7] = v / 3.f;
	outd[2 * i + 0] = exp((double)v);
	outd[2 * i + 1] = log(fabs((double)v) + 1e-3);
}
`

func ulpDiff32(a, b float32) float64 {
	if a == b {
		return 0
	}
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) || math.IsInf(float64(a), 0) || math.IsInf(float64(b), 0) {
		return math.Inf(1)
	}
	ulp := math.Nextafter32(float32(math.Abs(float64(b))), float32(math.Inf(1))) - float32(math.Abs(float64(b)))
	return math.Abs(float64(a)-float64(b)) / float64(ulp)
}

func TestCUDAMathLibrary(t *testing.T) {
	ptx := compileCUDA(t, "mathfns.cu", mathSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "mathfns")
	xs := []float32{0, -0.0, 1, -1, 0.5, 3.14159, -20.5, 80, -87, 88.5, -103, 1e-6, -1e-6, 1e-30, 2.5e-3, 17.125}
	n := len(xs)
	out, outd := e.alloc(32*n), e.alloc(16*n)
	e.mustLaunch(k, dim(1), dim(32), 0, u64p(e.f32s(xs)), u64p(out), u64p(outd), u32p(uint32(n)))
	got := e.readF32(out, 8*n)
	// CUDA C Programming Guide, "Mathematical Functions" (single and double
	// precision maximum ulp errors, no -use_fast_math)
	fns := []struct {
		name string
		f    func(float64) float64
		ulps float64
	}{
		{"expf", math.Exp, 2},
		{"logf", func(v float64) float64 { return math.Log(float64(float32(math.Abs(v)) + float32(1e-3))) }, 1},
		{"exp2f", math.Exp2, 2},
		{"log2f", func(v float64) float64 { return math.Log2(float64(float32(math.Abs(v)) + float32(1e-3))) }, 1},
		{"sqrtf", func(v float64) float64 { return math.Sqrt(math.Abs(v)) }, 0},
		{"1/x", func(v float64) float64 { return 1 / float64(float32(v+0.5)) }, 0},
		{"tanhf", math.Tanh, 2},
		{"x/3", func(v float64) float64 { return v / 3 }, 0},
	}
	for i, x := range xs {
		for j, fn := range fns {
			want := float32(fn.f(float64(x)))
			g := got[8*i+j]
			if d := ulpDiff32(g, want); d > fn.ulps {
				t.Errorf("%s(%g) = %g (%#08x), want %g (%#08x): %.1f ulp", fn.name, x, g, math.Float32bits(g), want, math.Float32bits(want), d)
			}
		}
	}
	b := make([]byte, 16*n)
	if err := e.Read(b, outd); err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		for j, f := range []func(float64) float64{math.Exp, func(v float64) float64 { return math.Log(math.Abs(v) + 1e-3) }} {
			g := math.Float64frombits(leU64(b[16*i+8*j:]))
			w := f(float64(x))
			if w != 0 && math.Abs(g-w)/math.Abs(w) > 4e-16 {
				t.Errorf("double fn %d(%g) = %v, want %v", j, x, g, w)
			}
		}
	}
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
