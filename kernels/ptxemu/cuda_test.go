package ptxemu_test

import (
	"math"
	"testing"
)

const reduceSrc = `
extern "C" __global__ void block_reduce(const float *x, float *out, int n) {
	__shared__ float s[256];
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	s[threadIdx.x] = i < n ? x[i] : 0.f;
	__syncthreads();
	for (int o = blockDim.x / 2; o > 0; o >>= 1) {
		if (threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
		__syncthreads();
	}
	if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

extern "C" __global__ void warp_reduce(const float *x, float *out, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	float v = i < n ? x[i] : 0.f;
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	if ((threadIdx.x & 31) == 0) atomicAdd(out, v);
}
`

func TestCUDABlockReduce(t *testing.T) {
	ptx := compileCUDA(t, "reduce.cu", reduceSrc)
	e := newEmu(t)
	const n = 1000
	x := make([]float32, n)
	var want [4]float32
	for i := range x {
		x[i] = float32(i%7) - 2.5
	}
	for b := 0; b < 4; b++ {
		// the tree order of the kernel, in float32
		s := make([]float32, 256)
		for j := range s {
			if b*256+j < n {
				s[j] = x[b*256+j]
			}
		}
		for o := 128; o > 0; o >>= 1 {
			for j := 0; j < o; j++ {
				s[j] += s[j+o]
			}
		}
		want[b] = s[0]
	}
	k := e.kernel(string(ptx), "block_reduce")
	xa, out := e.f32s(x), e.alloc(16)
	st := e.mustLaunch(k, dim(4), dim(256), 0, u64p(xa), u64p(out), u32p(n))
	got := e.readF32(out, 4)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d: got %v want %v", i, got[i], want[i])
		}
	}
	if st.Threads != 1024 || st.Barriers != 4*9 || st.Instructions == 0 {
		t.Errorf("stats %+v", st)
	}

	k2 := e.kernel(string(ptx), "warp_reduce")
	out2 := e.zeros(4)
	e.mustLaunch(k2, dim(4), dim(256), 0, u64p(xa), u64p(out2), u32p(n))
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	if g := e.readF32(out2, 1)[0]; math.Abs(float64(g)-sum) > 1e-3 {
		t.Errorf("warp_reduce: got %v want %v", g, sum)
	}
}
