// adamw.cu: AdamW with fp32 master weights and the global gradient norm
// (train/optim: AdamW.Step, GlobalNorm, ClipGradNorm).
//
// adamw_step: per element i of one run of segments sharing a decay flag,
//   g  = grad[i] * grad_scale               (clip coefficient, 1 if none)
//   p  = master[i] * decay_mul              (decay_mul = 1 - lr*wd, or 1)
//   m  = m + (1-b1)*(g - m)
//   v  = b2*v + (1-b2)*g*g
//   p -= step_size * (m / (sqrt(v)/bc2sqrt + eps))   step_size = lr/(1-b1^t)
//   master[i] = p; weights_bf16[i] = bf16(p) (when not null).
// Every operation is an explicitly rounded fp32 intrinsic (no FMA
// contraction), in the CPU's order, so results can match train/optim's
// float32 code bit for bit.
//   grid any, block 256, grid-stride over n.
extern "C" __global__ void adamw_step(float *master, bf16_t *weights_bf16, float *m_buf, float *v_buf,
	const float *grad, long long n, float grad_scale, float decay_mul, float b1c, float b2, float b2c,
	float eps, float step_size, float bc2sqrt) {
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float g = __fmul_rn(grad[i], grad_scale);
		float p = __fmul_rn(master[i], decay_mul);
		float m = m_buf[i];
		m = __fadd_rn(m, __fmul_rn(b1c, __fsub_rn(g, m)));
		float v = __fadd_rn(__fmul_rn(v_buf[i], b2), __fmul_rn(__fmul_rn(b2c, g), g));
		m_buf[i] = m;
		v_buf[i] = v;
		float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2sqrt), eps);
		p = __fsub_rn(p, __fmul_rn(step_size, __fdiv_rn(m, denom)));
		master[i] = p;
		if (weights_bf16) weights_bf16[i] = f2bf(p);
	}
}

// sumsq_partial: partial[blockIdx.x] = sum of g[i]^2 over the block's
// grid-stride share, accumulated in fp64. With a fixed grid the result is
// deterministic. grid (G) <= 1024, block 256.
extern "C" __global__ void sumsq_partial(double *partial, const float *g, long long n) {
	__shared__ double scratch[32];
	double s = 0.0;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		double v = (double)g[i];
		s += v * v;
	}
	s = block_sum_d(s, scratch);
	if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// sumsq_final: out[0] = sqrt(sum of partial[0..G)), out[1] = the clip
// coefficient min(1, max_norm/(norm + 1e-6)) (1 when max_norm <= 0), as
// torch.nn.utils.clip_grad_norm_; feed out[1] to adamw_step's grad_scale
// after reading it back, or keep it on device. grid (1), block 256.
extern "C" __global__ void sumsq_final(double *out, const double *partial, int G, double max_norm) {
	__shared__ double scratch[32];
	double s = 0.0;
	for (int i = threadIdx.x; i < G; i += blockDim.x) s += partial[i];
	s = block_sum_d(s, scratch);
	if (threadIdx.x == 0) {
		double norm = sqrt(s);
		double coef = 1.0;
		if (max_norm > 0.0) {
			coef = max_norm / (norm + 1e-6);
			if (coef > 1.0) coef = 1.0;
		}
		out[0] = norm;
		out[1] = coef;
	}
}
