// elementwise.cu: SwiGLU forward/backward, bf16 <-> fp32 conversion and
// scaling. All flat over n elements with a grid-stride loop.
// Launch: any grid (e.g. min(ceil(n/256), 65535*...) blocks) x 256 threads.

// out[i] = silu(gate[i]) * up[i]; all (N, I) bf16. Matches
// engine.SwiGLUForward (which computes in float64; fp32 here).
extern "C" __global__ void swiglu_fwd(bf16_t *out, const bf16_t *gate, const bf16_t *up, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float g = bf2f(gate[i]);
		float sig = 1.f / (1.f + expf(-g));
		out[i] = f2bf(g * sig * bf2f(up[i]));
	}
}

// dgate, dup overwritten from dout (engine.SwiGLUBackward):
//   dup   = dout * silu(g)
//   dgate = dout * up * sig * (1 + g * (1 - sig))
extern "C" __global__ void swiglu_bwd(bf16_t *dgate, bf16_t *dup, const bf16_t *dout, const bf16_t *gate,
	const bf16_t *up, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float g = bf2f(gate[i]);
		float sig = 1.f / (1.f + expf(-g));
		float d = bf2f(dout[i]);
		dup[i] = f2bf(d * g * sig);
		dgate[i] = f2bf(d * bf2f(up[i]) * sig * (1.f + g * (1.f - sig)));
	}
}

// dst = bf16(src * scale), e.g. the fp32 dq accumulator to bf16 dq.
extern "C" __global__ void f32_to_bf16(bf16_t *dst, const float *src, float scale, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		dst[i] = f2bf(src[i] * scale);
}

// dst = fp32(src), e.g. bf16 activations to fp32 for a loss.
extern "C" __global__ void bf16_to_f32(float *dst, const bf16_t *src, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		dst[i] = bf2f(src[i]);
}

// acc += fp32(src): every gradient sum (a bf16 branch gradient into the
// fp32 residual-stream gradient, micro-batch gradients into the fp32
// gradient buffer) is accumulated in fp32. acc_bf16, when not null,
// receives bf16(acc) after the update, the operand of the next bf16 GEMM,
// in the same pass.
extern "C" __global__ void accumulate_bf16_f32(float *acc, bf16_t *acc_bf16, const bf16_t *src, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float v = acc[i] + bf2f(src[i]);
		acc[i] = v;
		if (acc_bf16) acc_bf16[i] = f2bf(v);
	}
}

// out = a + b (bf16; out may alias a or b): the forward residual
// connections only, whose activations are bf16 anyway. Gradients are never
// summed here (accumulate_bf16_f32).
extern "C" __global__ void add_bf16(bf16_t *out, const bf16_t *a, const bf16_t *b, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		out[i] = f2bf(bf2f(a[i]) + bf2f(b[i]));
}

// x *= s over n fp32 values, one .rn multiply each (engine.Scale): the
// gradient clipping of optim.ClipGradNorm, with s = float32 of the
// coefficient sumsq_final computes, for a buffer adamw_step does not scale
// through its grad_scale.
extern "C" __global__ void scale_f32(float *x, float s, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		x[i] *= s;
}
