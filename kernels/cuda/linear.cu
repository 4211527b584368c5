// linear.cu: the bias halves of engine.LinearForward and LinearBackward
// (the q/k/v projections' biases). The weight halves are cuBLASLt GEMMs.

// bias_add_bf16: out[r*ldo + j] = bf16(out[r*ldo + j] + bias[j]) for r < N,
// j < O: the forward bias added after the projection GEMM has written its
// bf16 output. ldo >= O lets one call address the q, k or v columns of a
// fused (N, (Hq+2Hk)D) qkv buffer. The sum is one fp32 add of the widened
// operands and one rounding, as engine.LinearForward's fp32 add; the GEMM's
// own bf16 rounding of out comes before it (the CPU rounds once).
//   out (N, ldo) bf16 in/out; bias (O) bf16.
//   grid: any (rows are grid-strided; e.g. min(N, 65535)), block 256.
extern "C" __global__ void bias_add_bf16(bf16_t *out, long long ldo, const bf16_t *bias, int N, int O) {
	for (int r = blockIdx.x; r < N; r += gridDim.x) {
		bf16_t *o = out + (long long)r * ldo;
		for (int j = threadIdx.x; j < O; j += blockDim.x) o[j] = f2bf(bf2f(o[j]) + bf2f(bias[j]));
	}
}

// colsum_partial: the bias gradient db = sum over rows of dout, in two
// deterministic steps as rmsnorm_bwd's dw: block b writes (overwrites)
//   partial[b*O + j] = sum of dout[r*O + j] over r = b, b+G, b+2G, ...
// in that order, in fp32 (0 for a block with no rows, so partial needs no
// zeroing), and rmsnorm_dw_reduce(db, partial, G, O) then ADDS the G
// partial rows into db in g order: the result is independent of timing.
//   dout (N, O) bf16; partial (G, O) fp32.
//   grid (G), G <= N for useful work (e.g. min(N, 2 * SMs)), block 256.
extern "C" __global__ void colsum_partial(float *partial, const bf16_t *dout, int N, int O) {
	float *part = partial + (long long)blockIdx.x * O;
	for (int j = threadIdx.x; j < O; j += blockDim.x) {
		float acc = 0.f;
		for (int r = blockIdx.x; r < N; r += gridDim.x) acc += bf2f(dout[(long long)r * O + j]);
		part[j] = acc;
	}
}
