// common.cuh is prepended (by kernels.KernelSource) to every kernel source
// before NVRTC compiles it. It must not #include anything: NVRTC on a node
// without the CUDA toolkit has no headers (Debian's NVRTC 11.8 cannot open
// cuda_bf16.h), so bf16 is a raw 16-bit pattern converted with bit
// operations (widening) and inline PTX cvt.rn (narrowing, sm_80+).
//
// Conventions shared by all kernels:
//   - bf16 tensors are `bf16_t *` (raw bits), fp32 compute and accumulation;
//   - every entry point is extern "C" so cuModuleGetFunction finds it by its
//     plain name;
//   - sizes that can exceed 2^31 elements are `long long`;
//   - kernels never trap on bad data: an out-of-range id sets *err (if err is
//     not null) to 1 + the offending row, and the host turns it into an error.

typedef unsigned short bf16_t;
typedef unsigned int u32;
typedef unsigned long long u64;

#define PC_INF __int_as_float(0x7f800000)
#define PC_LOG2E 1.4426950408889634f
#define PC_LN2 0.6931471805599453f

__device__ __forceinline__ float bf2f(bf16_t h) { return __uint_as_float(((u32)h) << 16); }

// f2bf rounds to nearest even (NaN stays NaN) with the sm_80 conversion.
__device__ __forceinline__ bf16_t f2bf(float f) {
	bf16_t r;
	asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
	return r;
}

// pack_bf16x2 returns {lo, hi} as one 32-bit register: lo in bits 0..15,
// the layout mma.sync expects for two consecutive elements.
__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
	u32 r;
	asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
	return r;
}

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

// block_sum returns the sum of v over the block to every thread. scratch
// holds at least 32 floats; blockDim.x is a multiple of 32. The leading
// __syncthreads makes back-to-back calls with the same scratch safe.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum(v);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : 0.f;
	return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : -PC_INF;
	return warp_max(v);
}

__device__ __forceinline__ double block_sum_d(double v, double *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum_d(v);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : 0.0;
	return warp_sum_d(v);
}

// set_err records the first bad row (1-based so 0 means "no error").
__device__ __forceinline__ void set_err(int *err, long long row) {
	if (err != 0) atomicCAS(err, 0, (int)(row + 1));
}
