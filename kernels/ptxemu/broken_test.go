package ptxemu_test

import (
	"strings"
	"testing"

	"purpcode/kernels/ptxemu"
)

// The three deliberately broken kernels of the checker proofs, compiled by
// NVRTC: each is a correct kernel with one line changed.

const brokenSrc = `
// block_sum_nosync is block_reduce with the __syncthreads after the shared
// store removed: thread t reads s[t+o] before (or after) its owner wrote it.
extern "C" __global__ void block_sum_nosync(const float *x, float *out) {
	__shared__ float s[128];
	s[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
	for (int o = blockDim.x / 2; o > 0; o >>= 1) {
		if (threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
		__syncthreads();
	}
	if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// copy_off_by_one guards with <= instead of <.
extern "C" __global__ void copy_off_by_one(const float *x, float *y, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i <= n) y[i] = 2.f * x[i];
}

// barrier_divergent synchronises only the first half-warp.
extern "C" __global__ void barrier_divergent(float *y) {
	__shared__ float s[64];
	s[threadIdx.x] = threadIdx.x;
	__syncthreads();
	float v = s[63 - threadIdx.x];
	if (threadIdx.x < 16) __syncthreads();
	y[threadIdx.x] = v;
}
`

func TestBrokenKernelRaceReported(t *testing.T) {
	ptx := compileCUDA(t, "broken.cu", brokenSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "block_sum_nosync")
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(i)
	}
	_, err := e.launch(k, dim(2), dim(128), 0, u64p(e.f32s(x)), u64p(e.alloc(8)))
	f := wantFault(t, err, ptxemu.SharedRace)
	if f.Kernel != "block_sum_nosync" || f.Line == 0 || !strings.Contains(f.Detail, "no bar.sync") {
		t.Errorf("race report lacks kernel, line or cause: %v", f)
	}
	t.Log(f)
}

func TestBrokenKernelOutOfBoundsNamesThread(t *testing.T) {
	ptx := compileCUDA(t, "broken.cu", brokenSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "copy_off_by_one")
	const n = 100
	x := e.f32s(make([]float32, n))
	y := e.alloc(4 * n)
	_, err := e.launch(k, dim(2), dim(64), 0, u64p(x), u64p(y), u32p(n))
	f := wantFault(t, err, ptxemu.OutOfBounds)
	// element n = 100 is thread 36 of block 1
	if f.Block != [3]uint32{1, 0, 0} || f.Thread != [3]uint32{36, 0, 0} || f.Kernel != "copy_off_by_one" || f.Line == 0 {
		t.Errorf("wrong thread or location: %v", f)
	}
	if !strings.Contains(f.Detail, "0 bytes past the end") {
		t.Errorf("detail does not say where: %v", f)
	}
	t.Log(f)
	// the fixed guard runs clean, so the fault is the off-by-one's
	if _, err := e.launch(k, dim(2), dim(64), 0, u64p(x), u64p(y), u32p(n-1)); err != nil {
		t.Errorf("in-bounds launch failed: %v", err)
	}
}

func TestBrokenKernelDivergentBarrierReported(t *testing.T) {
	ptx := compileCUDA(t, "broken.cu", brokenSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "barrier_divergent")
	_, err := e.launch(k, dim(1), dim(64), 0, u64p(e.alloc(4*64)))
	f := wantFault(t, err, ptxemu.BarrierDivergence)
	t.Log(f)
}
