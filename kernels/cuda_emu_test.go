package kernels

import (
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"purpcode/kernels/ptxemu"
)

// The tests in this file run the embedded kernels on the PTX emulator
// through an emulated Context: the PTX NVRTC produces for compute_80,
// launched through the same Function.Launch as on a GPU. They need NVRTC
// (skipped without it unless -nvrtc-required).

// testPTXDir is a PTX cache shared by every test of one `go test` run, so
// each source is compiled once per architecture, not once per test.
var testPTXDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "purpcode-kernels-ptx-")
	if err == nil {
		testPTXDir = dir
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// testPTXCache is the shared cache (nil, caching nothing, if the
// temporary directory could not be made).
func testPTXCache() *PTXCache {
	if testPTXDir == "" {
		return nil
	}
	return &PTXCache{Dir: testPTXDir}
}

// emuKit is an emulated context with the embedded kernels.
type emuKit struct {
	t   testing.TB
	ctx *Context
	ks  *KernelSet
}

// -cuda-real runs the same kernel tests on GPU 0 through the real driver
// (scripts/gpu-check.sh): everything but the emulator-only checks.
var cudaReal = flag.Bool("cuda-real", false, "run the emulated-device kernel tests on the first real GPU instead")

// newTestContext is an emulated context, or GPU 0's with -cuda-real, and
// the NVRTC to compile for it.
func newTestContext(t testing.TB) (*Context, *NVRTC) {
	t.Helper()
	if !*cudaReal {
		ctx, err := NewEmulatedContext(ptxemu.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ctx.Destroy() })
		if ctx.Dev.Arch() != EmulatedArch || !ctx.Emulated() {
			t.Fatalf("emulated context reports %s", ctx.Dev.Arch())
		}
		return ctx, nil
	}
	drv, err := LoadDriver(CUDALibOptions{})
	if err != nil {
		t.Fatalf("-cuda-real: %v", err)
	}
	devs, err := drv.Devices()
	if err != nil || len(devs) == 0 {
		t.Fatalf("-cuda-real: no device (%v)", err)
	}
	ctx, err := drv.NewContext(devs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctx.Destroy() })
	n, err := LoadNVRTC(CUDALibOptions{NVRTCMaxVersion: drv.Version})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, n
}

// emulatorOnly skips checks a real device cannot make (or would crash on).
func emulatorOnly(t *testing.T) {
	t.Helper()
	if *cudaReal {
		t.Skip("emulator-only check")
	}
}

func newEmuKit(t testing.TB) *emuKit {
	t.Helper()
	ctx, n := newTestContext(t)
	if n == nil {
		n = loadNVRTCForTest(t)
	}
	return &emuKit{t: t, ctx: ctx, ks: NewKernelSet(ctx, n, testPTXCache())}
}

func (k *emuKit) fn(name string) Function {
	k.t.Helper()
	f, err := k.ks.Function(name)
	if err != nil {
		k.t.Fatal(err)
	}
	return f
}

func (k *emuKit) up(data any) DevicePtr {
	k.t.Helper()
	p, err := k.ctx.Upload(data)
	if err != nil {
		k.t.Fatal(err)
	}
	return p
}

func (k *emuKit) alloc(n int) DevicePtr {
	k.t.Helper()
	p, err := k.ctx.MemAlloc(uint64(n))
	if err != nil {
		k.t.Fatal(err)
	}
	return p
}

func (k *emuKit) down(dst any, p DevicePtr) {
	k.t.Helper()
	if err := k.ctx.Download(dst, p); err != nil {
		k.t.Fatal(err)
	}
}

// launch runs a kernel on the default stream and fails the test on error.
func (k *emuKit) launch(name string, grid, block Dim3, shmem uint32, args ...any) {
	k.t.Helper()
	if err := k.fn(name).Launch(grid, block, shmem, Stream{}, args...); err != nil {
		k.t.Fatal(err)
	}
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// roundBF16 is v as the kernels see it after storage in bf16.
func roundBF16(v []float32) []float32 { return FromBF16(BF16(v)) }

// lse64 is log(sum exp(z)) in float64; -inf entries contribute nothing.
func lse64(z []float32) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

func near(got, want, abs, rel float64) bool {
	return math.Abs(got-want) <= abs+rel*math.Abs(want)
}

func TestEmuStreamsAndCopies(t *testing.T) {
	k := newEmuKit(t)
	s, err := k.ctx.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	h, err := k.ctx.AllocHost(16)
	if err != nil {
		t.Fatal(err)
	}
	copy(h.Bytes(), "0123456789abcdef")
	p := k.alloc(16)
	if err := k.ctx.CopyToDeviceAsync(p, h, 4, 8, s); err != nil {
		t.Fatal(err)
	}
	if err := k.ctx.ZeroAsync(p+8, 8, s); err != nil {
		t.Fatal(err)
	}
	// In order on s: the copy lands in bytes 0..8, then 8..16 are zeroed.
	if err := k.ctx.CopyFromDeviceAsync(h, 0, 16, p, s); err != nil {
		t.Fatal(err)
	}
	if err := k.ctx.Synchronize(s); err != nil {
		t.Fatal(err)
	}
	if got := string(h.Bytes()); got != "456789ab\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Errorf("host buffer %q", got)
	}
	if err := k.ctx.CopyToDeviceAsync(p, h, 10, 8, s); err == nil {
		t.Error("copy past the pinned buffer accepted")
	}
	if err := k.ctx.DestroyStream(s); err != nil {
		t.Fatal(err)
	}
	if !*cudaReal { // the driver's behaviour with a destroyed handle is undefined
		if err := k.ctx.ZeroAsync(p, 8, s); err == nil || !strings.Contains(err.Error(), "DestroyStream") {
			t.Errorf("use of a destroyed stream: %v", err)
		}
	}
	if err := k.ctx.MemFree(p + 4); err == nil {
		t.Error("freeing an interior pointer accepted")
	}
	if err := k.ctx.MemFree(p); err != nil {
		t.Fatal(err)
	}
	if err := h.Free(); err != nil {
		t.Fatal(err)
	}
}

// TestEmuXentNegInf: rows whose first element for some thread is -inf (a
// masked, padded vocabulary) gave NaN loss and gradient (exp(-inf - -inf));
// the CPU op is finite.
func TestEmuXentNegInf(t *testing.T) {
	k := newEmuKit(t)
	const R, V = 4, 600 // V not a multiple of the 512-thread block
	r := rand.New(rand.NewPCG(3, 4))
	z := randn(r, R*V, 2)
	ninf := float32(math.Inf(-1))
	for j := 0; j < 100; j++ {
		z[j] = ninf // row 0: threads 0..99 start at -inf
	}
	for j := 0; j < V; j += 3 {
		z[V+j] = ninf // row 1: every third slot masked
	}
	targets := []int32{150, 1, -100, 599}
	const scale = float32(0.25)
	logits, tg, errp := k.up(z), k.up(targets), k.up([]int32{0})
	loss, dlb := k.alloc(4*R), k.alloc(2*R*V)
	k.launch("xent_fwd_bwd", Dim3{R, 1, 1}, Dim3{512, 1, 1}, 0, logits, dlb, loss, tg, int32(R), int32(V), scale, int32(1), errp)
	gotLoss, grad, gradB := make([]float32, R), make([]float32, R*V), make([]uint16, R*V)
	var gotErr [1]int32
	k.down(gotLoss, loss)
	k.down(grad, logits)
	k.down(gradB, dlb)
	k.down(gotErr[:], errp)
	if gotErr[0] != 0 {
		t.Errorf("err = %d, want 0", gotErr[0])
	}
	for row := 0; row < R; row++ {
		zr := z[row*V : (row+1)*V]
		if targets[row] == -100 {
			if gotLoss[row] != 0 {
				t.Errorf("ignored row %d: loss %g", row, gotLoss[row])
			}
			continue
		}
		lse := lse64(zr)
		want := lse - float64(zr[targets[row]])
		if !near(float64(gotLoss[row]), want, 1e-5, 1e-5) {
			t.Errorf("row %d: loss %g, want %g", row, gotLoss[row], want)
		}
		for j, v := range zr {
			g := math.Exp(float64(v)-lse) * float64(scale)
			if j == int(targets[row]) {
				g -= float64(scale)
			}
			got := grad[row*V+j]
			if !near(float64(got), g, 1e-7, 1e-5) {
				t.Fatalf("row %d: dlogits[%d] = %g, want %g", row, j, got, g)
			}
			if gradB[row*V+j] != f32ToBF16(got) {
				t.Fatalf("row %d: bf16 dlogits[%d] is not bf16 of the fp32 gradient", row, j)
			}
		}
	}
}

// TestEmuTokenLogprobsIgnore: the ignore index -100 gives 0 without an
// error, as engine.LMHeadTokenStats; other bad tokens still report theirs.
func TestEmuTokenLogprobsIgnore(t *testing.T) {
	k := newEmuKit(t)
	const R, V = 5, 37
	r := rand.New(rand.NewPCG(5, 6))
	z := randn(r, R*V, 1.5)
	const invT = float32(1 / 0.7)
	tokens := []int32{5, -100, 36, 40, 0}
	logits, lse := k.up(z), k.alloc(4*R)
	k.launch("logsumexp_rows", Dim3{R, 1, 1}, Dim3{512, 1, 1}, 0, lse, logits, int32(R), int32(V), invT)
	out, tok, errp := k.alloc(4*R), k.up(tokens), k.up([]int32{0})
	k.launch("token_logprobs", Dim3{1, 1, 1}, Dim3{256, 1, 1}, 0, out, logits, lse, tok, int32(R), int32(V), invT, errp)
	got := make([]float32, R)
	var gotErr [1]int32
	k.down(got, out)
	k.down(gotErr[:], errp)
	if gotErr[0] != 4 {
		t.Errorf("err = %d, want 4 (row 3's token 40 >= V; row 1's -100 is not an error)", gotErr[0])
	}
	for row, tk := range tokens {
		want := 0.0
		if tk >= 0 && tk < V {
			zs := make([]float32, V)
			for j := range zs {
				zs[j] = z[row*V+j] * invT
			}
			want = float64(zs[tk]) - lse64(zs)
		}
		if !near(float64(got[row]), want, 2e-6, 1e-5) {
			t.Errorf("row %d token %d: logprob %g, want %g", row, tk, got[row], want)
		}
	}
}

// TestEmuAccumulateF32: gradients summed through accumulate_bf16_f32 keep
// contributions below bf16's half-ulp, which add_bf16 (bf16 accumulation)
// drops: 1 + 64 * 2^-9 stays 1 in bf16 and is 1.125 in fp32.
func TestEmuAccumulateF32(t *testing.T) {
	k := newEmuKit(t)
	const n, steps = 100, 64
	ones, tiny := make([]float32, n), make([]float32, n)
	for i := range ones {
		ones[i], tiny[i] = 1, 1.0/512
	}
	acc, accB, src := k.up(ones), k.alloc(2*n), k.up(BF16(tiny))
	sumB := k.up(BF16(ones))
	for s := 0; s < steps; s++ {
		k.launch("accumulate_bf16_f32", Dim3{1, 1, 1}, Dim3{256, 1, 1}, 0, acc, accB, src, int64(n))
		k.launch("add_bf16", Dim3{1, 1, 1}, Dim3{256, 1, 1}, 0, sumB, sumB, src, int64(n))
	}
	got, gotB, bf := make([]float32, n), make([]uint16, n), make([]uint16, n)
	k.down(got, acc)
	k.down(gotB, accB)
	k.down(bf, sumB)
	for i := range got {
		if got[i] != 1.125 || bf16ToF32(gotB[i]) != 1.125 {
			t.Fatalf("fp32 accumulation [%d] = %g (bf16 mirror %g), want 1.125", i, got[i], bf16ToF32(gotB[i]))
		}
		if bf16ToF32(bf[i]) != 1 {
			t.Fatalf("bf16 accumulation [%d] = %g; the test's premise (bf16 drops 2^-9 at 1.0) is wrong", i, bf16ToF32(bf[i]))
		}
	}
}

// TestEmuRMSNormBwdF32: rmsnorm_bwd accumulates dx in fp32 (the residual
// stream's gradient) and mirrors it in bf16; dw is reduced in fixed order.
func TestEmuRMSNormBwdF32(t *testing.T) {
	k := newEmuKit(t)
	const N, C, G = 3, 70, 2
	r := rand.New(rand.NewPCG(7, 8))
	x, w, dout := roundBF16(randn(r, N*C, 1)), roundBF16(randn(r, C, 1)), roundBF16(randn(r, N*C, 1e-3))
	dx0 := make([]float32, N*C)
	for i := range dx0 {
		dx0[i] = 1 + float32(i%7)*1e-4 // distinct fp32 values bf16 cannot hold
	}
	const eps = 1e-6
	rstd := make([]float32, N)
	for row := range N {
		var ss float64
		for j := range C {
			v := float64(x[row*C+j])
			ss += v * v
		}
		rstd[row] = float32(1 / math.Sqrt(ss/C+eps))
	}
	px, pw, pd, pr := k.up(BF16(x)), k.up(BF16(w)), k.up(BF16(dout)), k.up(rstd)
	dx, dxB, part, dw := k.up(dx0), k.alloc(2*N*C), k.alloc(4*G*C), k.up(make([]float32, C))
	if err := k.ctx.ZeroAsync(part, 4*G*C, Stream{}); err != nil {
		t.Fatal(err)
	}
	k.launch("rmsnorm_bwd", Dim3{G, 1, 1}, Dim3{256, 1, 1}, 0, dx, dxB, part, pd, px, pw, pr, int32(N), int32(C), int32(1))
	k.launch("rmsnorm_dw_reduce", Dim3{1, 1, 1}, Dim3{256, 1, 1}, 0, dw, part, int32(G), int32(C))
	got, gotB, gotW := make([]float32, N*C), make([]uint16, N*C), make([]float32, C)
	k.down(got, dx)
	k.down(gotB, dxB)
	k.down(gotW, dw)
	wantW := make([]float64, C)
	for row := range N {
		s := float64(rstd[row])
		var dot float64
		for j := range C {
			dot += float64(dout[row*C+j]) * float64(w[j]) * float64(x[row*C+j])
		}
		kk := s * s * s * dot / C
		for j := range C {
			i := row*C + j
			want := float64(dx0[i]) + s*float64(w[j])*float64(dout[i]) - kk*float64(x[i])
			if !near(float64(got[i]), want, 1e-7, 1e-6) {
				t.Fatalf("dx[%d] = %.9g, want %.9g (accumulated in fp32)", i, got[i], want)
			}
			if gotB[i] != f32ToBF16(got[i]) {
				t.Fatalf("dx_bf16[%d] is not bf16(dx)", i)
			}
			wantW[j] += float64(dout[i]) * float64(x[i]) * s
		}
	}
	for j := range C {
		if !near(float64(gotW[j]), wantW[j], 1e-8, 1e-5) {
			t.Fatalf("dw[%d] = %g, want %g", j, gotW[j], wantW[j])
		}
	}
}

func TestEmbeddingBwdPlan(t *testing.T) {
	ids := []int32{4, 2, 4, -1, 9, 2, 4, 10, 0}
	uniq, off, rows := EmbeddingBwdPlan(ids, 10)
	want := struct{ u, o, r []int32 }{[]int32{0, 2, 4, 9}, []int32{0, 1, 3, 6, 7}, []int32{8, 1, 5, 0, 2, 6, 4}}
	if !equal32(uniq, want.u) || !equal32(off, want.o) || !equal32(rows, want.r) {
		t.Errorf("plan = %v %v %v, want %v %v %v", uniq, off, rows, want.u, want.o, want.r)
	}
	if u, o, r := EmbeddingBwdPlan([]int32{-5}, 3); len(u) != 0 || len(r) != 0 || len(o) != 1 {
		t.Errorf("all-invalid plan = %v %v %v", u, o, r)
	}
}

func equal32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEmuEmbeddingBwdDeterministic: the gradient of repeated ids is summed
// in batch order, bit for bit the CPU loop's fp32 sums (fp32 atomics gave
// a run-dependent order).
func TestEmuEmbeddingBwdDeterministic(t *testing.T) {
	k := newEmuKit(t)
	const V, C = 50, 300 // C above the 256-thread block
	r := rand.New(rand.NewPCG(9, 10))
	ids := make([]int32, 40)
	for i := range ids {
		ids[i] = int32(r.IntN(8)) * 3 // heavy repeats
	}
	ids[5], ids[17] = -1, V // invalid ids are skipped
	dout := roundBF16(randn(r, len(ids)*C, 1))
	table := randn(r, V*C, 1)
	want := append([]float32(nil), table...)
	for row, id := range ids {
		if id < 0 || id >= V {
			continue
		}
		for j := range C {
			want[int(id)*C+j] += dout[row*C+j]
		}
	}
	uniq, off, rows := EmbeddingBwdPlan(ids, V)
	pd, pu, po, pr := k.up(BF16(dout)), k.up(uniq), k.up(off), k.up(rows)
	for run := 0; run < 2; run++ {
		dt := k.up(table)
		k.launch("embedding_bwd", Dim3{uint32(len(uniq)), 1, 1}, Dim3{256, 1, 1}, 0, dt, pd, pu, po, pr, int32(len(uniq)), int32(C))
		got := make([]float32, V*C)
		k.down(got, dt)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("run %d: dtable[%d] = %g, want %g bit for bit", run, i, got[i], want[i])
			}
		}
	}
}
