// xent.cu: the softmax + cross-entropy half of the fused, chunked lm head
// (engine.LMHeadLoss). The host loops over chunks of R token rows: a
// cuBLASLt GEMM writes fp32 logits (R, V) = h_chunk W^T, this kernel turns
// them into per-row losses and, in place, into dlogits, and two more GEMMs
// give dh_chunk = dlogits W and dW += dlogits^T h_chunk. Full-vocabulary
// logits exist for R rows at a time only. policy_rows is the same for the
// per-token log-probs, entropies and policy-gradient losses of GRPO.

__device__ __forceinline__ void online_merge(float &m, float &s, float m2, float s2) {
	float mn = fmaxf(m, m2);
	if (mn == -PC_INF) return; // both empty
	s = s * expf(m - mn) + s2 * expf(m2 - mn);
	m = mn;
}

// block_lse returns logsumexp(z[0..V)) to every thread of the block, by an
// online (max, sum) reduction: one read of the row. sm and ss are 32-float
// shared scratch; a later block_sum may reuse them (its leading
// __syncthreads orders it after every thread's read here).
__device__ __forceinline__ float block_lse(const float *z, int V, float *sm, float *ss) {
	// A -inf logit (a masked vocabulary slot) adds nothing; skipping it
	// explicitly matters while m is still -inf, where exp(v - m) would be
	// exp(-inf - -inf) = NaN.
	float m = -PC_INF, s = 0.f;
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float v = z[j];
		if (v > m) {
			s = s * expf(m - v) + 1.f;
			m = v;
		} else if (v != -PC_INF) {
			s += expf(v - m);
		}
	}
	// Warp then block merge of (m, s) pairs.
	for (int o = 16; o > 0; o >>= 1) {
		float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
		online_merge(m, s, m2, s2);
	}
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	if (lane == 0) {
		sm[warp] = m;
		ss[warp] = s;
	}
	__syncthreads();
	if (warp == 0) {
		m = lane < nw ? sm[lane] : -PC_INF;
		s = lane < nw ? ss[lane] : 0.f;
		for (int o = 16; o > 0; o >>= 1) {
			float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
			online_merge(m, s, m2, s2);
		}
		if (lane == 0) {
			sm[0] = m;
			ss[0] = s;
		}
	}
	__syncthreads();
	return sm[0] + logf(ss[0]);
}

// row_target returns the row's target when it is in [0, V), else -1 after
// recording an out-of-range one in *err (the ignore index -100 is not an
// error) and, when want_grad, zeroing the row's gradient.
__device__ __forceinline__ int row_target(float *z, bf16_t *zb, int t, int r, int V, int want_grad, int *err) {
	if (t >= 0 && t < V) return t;
	if (t != -100 && threadIdx.x == 0) set_err(err, r);
	if (want_grad) {
		for (int j = threadIdx.x; j < V; j += blockDim.x) {
			z[j] = 0.f;
			if (zb) zb[j] = 0;
		}
	}
	return -1;
}

// xent_fwd_bwd: for row r with target t = targets[r]:
//   t == -100 (ignore): loss[r] = 0, dlogits row = 0 (when want_grad);
//   t outside [0, V): loss[r] = 0, row zeroed, *err = r+1;
//   else lse = logsumexp(z), loss[r] = lse - z[t] and, when want_grad,
//     z[j] = exp(z[j] - lse) * scale - (j == t ? scale : 0).
//   scale is d(total loss)/d(row loss), typically 1/(target tokens of the
//   optimizer step). dlogits_bf16, when not null, also receives the
//   gradient rounded to bf16 (the operand of the bf16 backward GEMMs).
//   logits (R, V) fp32 in/out; loss (R) fp32; targets (R) int.
//   grid (R), block 512. Pass 1 is an online (max, sum) reduction, so the
//   row is read twice in total (once more to write the gradient).
extern "C" __global__ void xent_fwd_bwd(float *logits, bf16_t *dlogits_bf16, float *loss, const int *targets, int R,
	int V, float scale, int want_grad, int *err) {
	__shared__ float sm[32], ss[32];
	int r = blockIdx.x;
	if (r >= R) return;
	float *z = logits + (long long)r * V;
	bf16_t *zb = dlogits_bf16 ? dlogits_bf16 + (long long)r * V : 0;
	int t = row_target(z, zb, targets[r], r, V, want_grad, err);
	if (t < 0) {
		if (threadIdx.x == 0) loss[r] = 0.f;
		return;
	}
	float lse = block_lse(z, V, sm, ss);
	float zt = z[t];
	// Every thread has read z[t] before any thread overwrites it below.
	__syncthreads();
	if (threadIdx.x == 0) loss[r] = lse - zt;
	if (!want_grad) return;
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float g = expf(z[j] - lse) * scale;
		if (j == t) g -= scale;
		z[j] = g;
		if (zb) zb[j] = f2bf(g);
	}
}

// policy_rows: the device twin of engine.LMHeadTokenStats (forward) and
// engine.LMHeadTokenGrad (backward) on one chunk of fp32 logits, as
// xent_fwd_bwd is of LMHeadLoss: the host computes logits = h_chunk W^T,
// calls this, then dh_chunk = dlogits W and dW += dlogits^T h_chunk.
// For row r with target t = targets[r]:
//   t == -100 (ignore): logp[r] = 0, ent[r] = 0, gradient row 0;
//   t outside [0, V): as the ignore index, and *err = r+1;
//   else lse = logsumexp(z) (-inf slots skipped, as xent_fwd_bwd),
//     logp[r] = z[t] - lse, H = -sum_j p_j log p_j with p = softmax(z),
//     ent[r] = H when ent is not null, and when want_grad, in place,
//     z[j] = -a[r] p_j - e[r] p_j (log p_j + H) + (j == t ? a[r] : 0),
//   the gradient of L = sum_r a[r] logp[r] + e[r] H[r]. e may be null (no
//   entropy term); the extra pass over the row for H is made only when ent
//   is not null or (want_grad and) e[r] != 0.
//   A -inf slot gets gradient 0 (its p is 0; the formula would give NaN).
//   dlogits_bf16, when not null, also receives the gradient rounded to
//   bf16 (the operand of the bf16 backward GEMMs).
//   logits (R, V) fp32 in/out; logp, ent, a, e (R) fp32; targets (R) int;
//   a may be null when want_grad == 0. grid (R), block 512. The row is
//   read once for lse, once more for H and once to write the gradient.
extern "C" __global__ void policy_rows(float *logits, bf16_t *dlogits_bf16, float *logp, float *ent, const int *targets,
	const float *a, const float *e, int R, int V, int want_grad, int *err) {
	__shared__ float sm[32], ss[32];
	int r = blockIdx.x;
	if (r >= R) return;
	float *z = logits + (long long)r * V;
	bf16_t *zb = dlogits_bf16 ? dlogits_bf16 + (long long)r * V : 0;
	int t = row_target(z, zb, targets[r], r, V, want_grad, err);
	if (t < 0) {
		if (threadIdx.x == 0) {
			logp[r] = 0.f;
			if (ent) ent[r] = 0.f;
		}
		return;
	}
	float lse = block_lse(z, V, sm, ss);
	float zt = z[t];
	float er = want_grad && e ? e[r] : 0.f;
	float h = 0.f;
	if (ent || er != 0.f) {
		for (int j = threadIdx.x; j < V; j += blockDim.x) {
			float v = z[j];
			if (v != -PC_INF) {
				float lp = v - lse;
				h -= expf(lp) * lp;
			}
		}
		h = block_sum(h, sm);
	}
	// Every thread has read z[t] before any thread overwrites it below.
	__syncthreads();
	if (threadIdx.x == 0) {
		logp[r] = zt - lse;
		if (ent) ent[r] = h;
	}
	if (!want_grad) return;
	float ar = a[r];
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float v = z[j], g = 0.f;
		if (v != -PC_INF) {
			float lp = v - lse, p = expf(lp);
			g = -ar * p;
			if (er != 0.f) g -= er * p * (lp + h);
		}
		if (j == t) g += ar;
		z[j] = g;
		if (zb) zb[j] = f2bf(g);
	}
}

// logsumexp_rows: lse[r] = logsumexp(logits[r, :] * inv_temp) for fp32
// logits (R, V): log-probs of chosen tokens are z[t]*inv_temp - lse[r].
//   grid (R), block 512.
extern "C" __global__ void logsumexp_rows(float *lse, const float *logits, int R, int V, float inv_temp) {
	__shared__ float scratch[32];
	int r = blockIdx.x;
	if (r >= R) return;
	const float *z = logits + (long long)r * V;
	float m = -PC_INF;
	for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, z[j] * inv_temp);
	m = block_max(m, scratch);
	float s = 0.f;
	for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(z[j] * inv_temp - m);
	s = block_sum(s, scratch);
	if (threadIdx.x == 0) lse[r] = m + logf(s);
}

// token_logprobs: out[r] = logits[r, tokens[r]] * inv_temp - lse[r] (lse from
// logsumexp_rows with the same inv_temp): the per-token log-probs GRPO's
// policy ratio and KL need. The ignore index -100 gives 0, as
// engine.LMHeadTokenStats; any other token outside [0, V) gives 0 and sets
// *err.
//   grid (ceil(R/256)), block 256.
extern "C" __global__ void token_logprobs(float *out, const float *logits, const float *lse, const int *tokens, int R,
	int V, float inv_temp, int *err) {
	int r = blockIdx.x * blockDim.x + threadIdx.x;
	if (r >= R) return;
	int t = tokens[r];
	if (t < 0 || t >= V) {
		if (t != -100) set_err(err, r);
		out[r] = 0.f;
		return;
	}
	out[r] = logits[(long long)r * V + t] * inv_temp - lse[r];
}
