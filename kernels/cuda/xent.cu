// xent.cu: the softmax + cross-entropy half of the fused, chunked lm head
// (engine.LMHeadLoss). The host loops over chunks of R token rows: a
// cuBLASLt GEMM writes fp32 logits (R, V) = h_chunk W^T, this kernel turns
// them into per-row losses and, in place, into dlogits, and two more GEMMs
// give dh_chunk = dlogits W and dW += dlogits^T h_chunk. Full-vocabulary
// logits exist for R rows at a time only.
//
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
__device__ __forceinline__ void online_merge(float &m, float &s, float m2, float s2) {
	float mn = fmaxf(m, m2);
	if (mn == -PC_INF) return; // both empty
	s = s * expf(m - mn) + s2 * expf(m2 - mn);
	m = mn;
}

extern "C" __global__ void xent_fwd_bwd(float *logits, bf16_t *dlogits_bf16, float *loss, const int *targets, int R,
	int V, float scale, int want_grad, int *err) {
	__shared__ float sm[32], ss[32];
	int r = blockIdx.x;
	if (r >= R) return;
	float *z = logits + (long long)r * V;
	bf16_t *zb = dlogits_bf16 ? dlogits_bf16 + (long long)r * V : 0;
	int t = targets[r];
	if (t == -100 || t < 0 || t >= V) {
		if (t != -100 && threadIdx.x == 0) set_err(err, r);
		if (threadIdx.x == 0) loss[r] = 0.f;
		if (want_grad) {
			for (int j = threadIdx.x; j < V; j += blockDim.x) {
				z[j] = 0.f;
				if (zb) zb[j] = 0;
			}
		}
		return;
	}
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
	float lse = sm[0] + logf(ss[0]);
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
