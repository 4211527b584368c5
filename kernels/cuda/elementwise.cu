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

// acc += fp32(src): bf16 gradients of one micro-batch into the fp32
// gradient buffer (gradients are reduced in fp32).
extern "C" __global__ void accumulate_bf16_f32(float *acc, const bf16_t *src, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		acc[i] += bf2f(src[i]);
}

// out = a + b (bf16; out may alias a or b): residual connections.
extern "C" __global__ void add_bf16(bf16_t *out, const bf16_t *a, const bf16_t *b, long long n) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
		out[i] = f2bf(bf2f(a[i]) + bf2f(b[i]));
}
