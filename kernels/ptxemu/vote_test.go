package ptxemu_test

import (
	"math/bits"
	"testing"

	"purpcode/kernels/ptxemu"
)

const voteSrc = `
extern "C" __global__ void votes(const int *x, unsigned *out) {
	int v = x[threadIdx.x];
	unsigned *o = out + 5 * threadIdx.x;
	o[0] = __ballot_sync(0xffffffffu, v > 0);
	o[1] = __any_sync(0xffffffffu, v > 40);
	o[2] = __all_sync(0xffffffffu, v > -100);
	o[3] = __reduce_add_sync(0xffffffffu, (unsigned)v);
	o[4] = (unsigned)__reduce_min_sync(0xffffffffu, v);
}
`

func TestCUDAVoteAndRedux(t *testing.T) {
	ptx := compileCUDA(t, "votes.cu", voteSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "votes")
	x := make([]uint32, 64)
	for i := range x {
		x[i] = uint32(int32((i*37)%50 - 20))
	}
	out := e.alloc(4 * 5 * 64)
	e.mustLaunch(k, dim(1), dim(64), 0, u64p(e.u32s(x)), u64p(out))
	got := e.readU32(out, 5*64)
	for w := 0; w < 2; w++ {
		var ballot uint32
		var sum uint32
		any, mn := uint32(0), int32(1<<30)
		for l := 0; l < 32; l++ {
			v := int32(x[32*w+l])
			if v > 0 {
				ballot |= 1 << l
			}
			if v > 40 {
				any = 1
			}
			sum += uint32(v)
			mn = min(mn, v)
		}
		want := []uint32{ballot, any, 1, sum, uint32(mn)}
		for l := 0; l < 32; l++ {
			for j := range want {
				if g := got[5*(32*w+l)+j]; g != want[j] {
					t.Errorf("warp %d lane %d result %d: got %#x want %#x", w, l, j, g, want[j])
				}
			}
		}
		if bits.OnesCount32(ballot) == 0 || bits.OnesCount32(ballot) == 32 {
			t.Fatal("test data does not exercise the ballot")
		}
	}
}

const syncwarpSrc = `
extern "C" __global__ void syncwarp(float *out, int sync) {
	__shared__ float s[4];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	if (lane == 0) s[warp] = warp + 0.5f;
	if (sync) __syncwarp();
	out[threadIdx.x] = s[warp];
}
`

// TestSyncwarpOrdersSharedMemory: lane 0 publishes through shared memory
// to its warp; __syncwarp makes that race-free, its absence is a race.
func TestSyncwarpOrdersSharedMemory(t *testing.T) {
	ptx := compileCUDA(t, "syncwarp.cu", syncwarpSrc)
	e := newEmu(t)
	k := e.kernel(string(ptx), "syncwarp")
	out := e.alloc(4 * 128)
	e.mustLaunch(k, dim(1), dim(128), 0, u64p(out), u32p(1))
	for i, v := range e.readF32(out, 128) {
		if v != float32(i/32)+0.5 {
			t.Fatalf("thread %d read %v", i, v)
		}
	}
	_, err := e.launch(k, dim(1), dim(128), 0, u64p(out), u32p(0))
	wantFault(t, err, ptxemu.SharedRace)
}
