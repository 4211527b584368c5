// rmsnorm.cu: RMSNorm forward and backward (engine.RMSNormForward/Backward).
//
// rmsnorm_fwd: out = x * rstd * w per row, rstd = 1/sqrt(mean(x^2) + eps).
//   x, out (N, C) bf16; w (C) bf16; rstd (N) fp32 saved for backward.
//   grid (N), block 256 (multiple of 32, <= 1024). fp32 accumulation.
extern "C" __global__ void rmsnorm_fwd(bf16_t *out, float *rstd, const bf16_t *x, const bf16_t *w, int n, int C, float eps) {
	__shared__ float scratch[32];
	int r = blockIdx.x;
	if (r >= n) return;
	const bf16_t *xr = x + (long long)r * C;
	float ss = 0.f;
	for (int j = threadIdx.x; j < C; j += blockDim.x) {
		float v = bf2f(xr[j]);
		ss += v * v;
	}
	ss = block_sum(ss, scratch);
	float s = rsqrtf(ss / (float)C + eps);
	if (threadIdx.x == 0) rstd[r] = s;
	bf16_t *o = out + (long long)r * C;
	for (int j = threadIdx.x; j < C; j += blockDim.x) o[j] = f2bf(bf2f(xr[j]) * s * bf2f(w[j]));
}

// rmsnorm_bwd: per row, with s = rstd[r] and k = s^3 * mean(dout*w*x),
//   dx = s*w*dout - k*x   (added to dx when accumulate != 0, else written).
//   dx is fp32: it is the residual stream's gradient, to which every layer
//   adds its branch, and summing those in bf16 would drop the small
//   contributions (8 mantissa bits). dx_bf16, when not null, receives
//   bf16(dx) after the update: the operand of the next bf16 GEMM.
//   dw_partial[blockIdx.x * C + j] += sum over this block's rows of
//   dout*x*s (each block owns one partial row, each thread its columns, so
//   there are no races and no atomics).
//   x, dout, dx_bf16 (N, C) bf16; dx (N, C) fp32; w (C) bf16; rstd (N) fp32;
//   dw_partial (gridDim.x, C) fp32, zeroed by the caller;
//   grid (G) with G <= N, block 256; block b handles rows b, b+G, b+2G, ...
// Then rmsnorm_dw_reduce adds the G partial rows into dw in a fixed order.
extern "C" __global__ void rmsnorm_bwd(float *dx, bf16_t *dx_bf16, float *dw_partial, const bf16_t *dout, const bf16_t *x,
	const bf16_t *w, const float *rstd, int n, int C, int accumulate) {
	__shared__ float scratch[32];
	float *part = dw_partial + (long long)blockIdx.x * C;
	for (int r = blockIdx.x; r < n; r += gridDim.x) {
		const bf16_t *xr = x + (long long)r * C;
		const bf16_t *gr = dout + (long long)r * C;
		float s = rstd[r];
		float dot = 0.f;
		for (int j = threadIdx.x; j < C; j += blockDim.x) dot += bf2f(gr[j]) * bf2f(w[j]) * bf2f(xr[j]);
		dot = block_sum(dot, scratch);
		float k = s * s * s * dot / (float)C;
		float *d = dx + (long long)r * C;
		bf16_t *db = dx_bf16 ? dx_bf16 + (long long)r * C : 0;
		for (int j = threadIdx.x; j < C; j += blockDim.x) {
			float xv = bf2f(xr[j]), gv = bf2f(gr[j]);
			float v = s * bf2f(w[j]) * gv - k * xv;
			if (accumulate) v += d[j];
			d[j] = v;
			if (db) db[j] = f2bf(v);
			part[j] += gv * xv * s;
		}
	}
}

// rmsnorm_dw_reduce: dw (C) fp32 += sum over g of partial[g, j], summed in
// g order (deterministic). grid (ceil(C/256)), block 256.
extern "C" __global__ void rmsnorm_dw_reduce(float *dw, const float *partial, int G, int C) {
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= C) return;
	float acc = 0.f;
	for (int g = 0; g < G; g++) acc += partial[(long long)g * C + j];
	dw[j] += acc;
}
