package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func newEmuGemm(t *testing.T) (*Context, *LtHandle) {
	t.Helper()
	ctx, _ := newTestContext(t)
	lt, err := CublasLtFor(ctx, CUDALibOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := lt.NewHandle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, h
}

// TestEmuGemmReference checks the emulated cuBLASLt GEMM for every
// transpose combination, bf16 and fp32 output, beta 0 (C not read: NaN
// there must not leak) and beta != 0, with padded leading dimensions whose
// gaps must stay untouched. The reference sums the exact bf16 products in
// float64; the emulator sums in fp32, so an fp32 D is within K fp32
// roundings (relative 1e-5 of the sum of |products|) and a bf16 D within
// one bf16 ulp of the rounded reference.
func TestEmuGemmReference(t *testing.T) {
	ctx, h := newEmuGemm(t)
	const M, N, K = 5, 7, 9
	r := rand.New(rand.NewPCG(21, 22))
	for _, transA := range []bool{false, true} {
		for _, transB := range []bool{false, true} {
			for _, outF32 := range []bool{false, true} {
				for _, beta := range []float32{0, 0.5} {
					name := fmt.Sprintf("tA=%v tB=%v f32=%v beta=%g", transA, transB, outF32, beta)
					spec := GemmSpec{M: M, N: N, K: K, TransA: transA, TransB: transB, OutF32: outF32, Workspace: 1024}
					ar, ac := spec.storedA()
					br, bc := spec.storedB()
					spec.LdA, spec.LdB, spec.LdC = ac+3, bc+1, N+2
					g, err := h.Plan(spec)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					a, b := roundBF16(randn(r, ar*spec.LdA, 1)), roundBF16(randn(r, br*spec.LdB, 1))
					cvals := randn(r, M*spec.LdC, 1)
					if !outF32 {
						cvals = roundBF16(cvals)
					}
					if beta == 0 {
						for i := range cvals {
							cvals[i] = float32(math.NaN())
						}
					}
					up := func(v []float32) DevicePtr {
						var p DevicePtr
						var err error
						if outF32 {
							p, err = ctx.Upload(v)
						} else {
							p, err = ctx.Upload(BF16(v))
						}
						if err != nil {
							t.Fatal(err)
						}
						return p
					}
					pa, _ := ctx.Upload(BF16(a))
					pb, _ := ctx.Upload(BF16(b))
					pc := up(cvals)
					sentinel := make([]float32, M*spec.LdC)
					for i := range sentinel {
						sentinel[i] = 96 // exact in bf16
					}
					pd := up(sentinel)
					ws, _ := ctx.MemAlloc(1024)
					const alpha = float32(0.75)
					if err := g.Run(ctx, h, alpha, beta, pa, pb, pc, pd, ws, Stream{}); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got := make([]float32, M*spec.LdC)
					if outF32 {
						err = ctx.Download(got, pd)
					} else {
						raw := make([]uint16, M*spec.LdC)
						err = ctx.Download(raw, pd)
						got = FromBF16(raw)
					}
					if err != nil {
						t.Fatal(err)
					}
					for i := 0; i < M; i++ {
						for j := 0; j < spec.LdC; j++ {
							v := got[i*spec.LdC+j]
							if j >= N {
								if v != 96 {
									t.Fatalf("%s: D gap [%d][%d] overwritten with %g", name, i, j, v)
								}
								continue
							}
							var sum, mag float64
							for kk := 0; kk < K; kk++ {
								ai, bi := i*spec.LdA+kk, kk*spec.LdB+j
								if transA {
									ai = kk*spec.LdA + i
								}
								if transB {
									bi = j*spec.LdB + kk
								}
								av, bv := a[ai], b[bi]
								sum += float64(av) * float64(bv)
								mag += math.Abs(float64(av) * float64(bv))
							}
							want := float64(alpha) * sum
							if beta != 0 {
								want += float64(beta) * float64(cvals[i*spec.LdC+j])
							}
							tol := 1e-5 * (mag + 1)
							if !outF32 {
								tol += math.Abs(want) / 128
							}
							if math.IsNaN(float64(v)) || math.Abs(float64(v)-want) > tol {
								t.Fatalf("%s: D[%d][%d] = %g, want %g", name, i, j, v, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestEmuGemmRejects: the arguments cuBLASLt rejects are rejected with its
// status, and operands outside their allocation are caught.
func TestEmuGemmRejects(t *testing.T) {
	emulatorOnly(t)
	ctx, h := newEmuGemm(t)
	status := func(err error) int {
		var ce *CUDAError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return -1
	}
	if _, err := h.Plan(GemmSpec{M: 4, N: 4, K: 8, LdA: 7}); status(err) != ltStatusInvalidValue || !strings.Contains(err.Error(), "lda 7 < 8") {
		t.Errorf("lda below the row: %v", err)
	}
	if _, err := h.Plan(GemmSpec{M: 4, N: 4, K: 8, TransB: true, LdB: 4}); status(err) != ltStatusInvalidValue || !strings.Contains(err.Error(), "ldb 4 < 8") {
		t.Errorf("ldb below the transposed row: %v", err)
	}
	if _, err := h.Plan(GemmSpec{M: 0, N: 4, K: 8}); status(err) != ltStatusInvalidValue {
		t.Errorf("m=0: %v", err)
	}
	g, err := h.Plan(GemmSpec{M: 4, N: 4, K: 8, Workspace: 4096})
	if err != nil {
		t.Fatal(err)
	}
	alloc := func(n uint64) DevicePtr {
		p, err := ctx.MemAlloc(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.ZeroAsync(p, n, Stream{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c, d, ws := alloc(64), alloc(64), alloc(32), alloc(32), alloc(4096)
	for _, tc := range []struct {
		name       string
		err        error
		code       int
		wantSubstr string
	}{
		{"null A", g.Run(ctx, h, 1, 0, 0, b, c, d, ws, Stream{}), ltStatusInvalidValue, "null pointer"},
		{"null D", g.Run(ctx, h, 1, 0, a, b, c, 0, ws, Stream{}), ltStatusInvalidValue, "null pointer"},
		{"null C with beta", g.Run(ctx, h, 1, 1, a, b, 0, d, ws, Stream{}), ltStatusInvalidValue, "C is null"},
		{"null workspace", g.Run(ctx, h, 1, 0, a, b, c, d, 0, Stream{}), ltStatusInvalidValue, "workspace pointer is null"},
		{"small workspace", g.Run(ctx, h, 1, 0, a, b, c, d, alloc(1024), Stream{}), -1, "runs past the end"},
		{"misaligned A", g.Run(ctx, h, 1, 0, a+2, b, c, d, ws, Stream{}), ltStatusNotSupported, "not aligned to the 256 bytes"},
		{"short B", g.Run(ctx, h, 1, 0, a, alloc(48), c, d, ws, Stream{}), -1, "operand B"},
		{"wild D", g.Run(ctx, h, 1, 0, a, b, c, DevicePtr(1<<40), ws, Stream{}), -1, "not inside any live allocation"},
	} {
		if tc.err == nil || (tc.code >= 0 && status(tc.err) != tc.code) || !strings.Contains(tc.err.Error(), tc.wantSubstr) {
			t.Errorf("%s: %v; want status %d and %q", tc.name, tc.err, tc.code, tc.wantSubstr)
		}
	}
	// C is not read when beta is 0, so it may be null then.
	if err := g.Run(ctx, h, 1, 0, a, b, 0, d, ws, Stream{}); err != nil {
		t.Errorf("null C with beta 0: %v", err)
	}
	// A smaller alignment promise admits views.
	g16, err := h.Plan(GemmSpec{M: 4, N: 4, K: 8, MinAlign: 16})
	if err != nil {
		t.Fatal(err)
	}
	big := alloc(256)
	if err := g16.Run(ctx, h, 1, 0, big+16, b, 0, d, 0, Stream{}); err != nil {
		t.Errorf("16-byte aligned view with MinAlign 16: %v", err)
	}
}
