// sampling.cu: logits processing and sampling for rollouts, mirroring
// generate's sampler (generate/sampling.go): temperature, top-k, top-p
// (after top-k, on the renormalised top-k mass), a draw with a uniform u
// supplied by the host's seeded RNG, and the log-prob of the drawn token
// under the distribution actually sampled from. Raw log-probs of any token
// come from logsumexp_rows + token_logprobs (xent.cu); greedy from
// argmax_rows.
//
// Candidate order is the CPU's: higher probability first, smaller id on
// ties. It is encoded in one unique 64-bit key per token,
//   key(j) = bits(p_j) << 32 | (0xFFFFFFFF - j)    (p_j >= 0, so float bits
//   order like the values), larger key = better candidate,
// so "the k best" and "the shortest prefix with mass >= x" are thresholds
// on the key, found by building the threshold bit by bit (64 block-wide
// passes over the row, no sort, no scratch memory). Probabilities are fp32
// (the CPU's are float64), so a token whose probability ties or nearly ties
// another's in the last fp32 bit can be ordered differently than on the CPU.

// softmax_temp_rows: probs (R, V) = softmax(logits * inv_temp), fp32.
//   grid (R), block 512.
extern "C" __global__ void softmax_temp_rows(float *probs, const float *logits, int R, int V, float inv_temp) {
	__shared__ float scratch[32];
	int r = blockIdx.x;
	if (r >= R) return;
	const float *z = logits + (long long)r * V;
	float *p = probs + (long long)r * V;
	float m = -PC_INF;
	for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, z[j] * inv_temp);
	m = block_max(m, scratch);
	float s = 0.f;
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float e = expf(z[j] * inv_temp - m);
		p[j] = e;
		s += e;
	}
	s = block_sum(s, scratch);
	float inv = 1.f / s;
	for (int j = threadIdx.x; j < V; j += blockDim.x) p[j] *= inv;
}

// argmax_rows: tok[r] = the largest logit's id, the smallest id on ties.
//   grid (R), block 512.
extern "C" __global__ void argmax_rows(int *tok, const float *logits, int R, int V) {
	__shared__ float bv[32];
	__shared__ int bi[32];
	int r = blockIdx.x;
	if (r >= R) return;
	const float *z = logits + (long long)r * V;
	float best = -PC_INF;
	int idx = 0x7fffffff;
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float x = z[j];
		if (x > best || (x == best && j < idx)) {
			best = x;
			idx = j;
		}
	}
	for (int o = 16; o > 0; o >>= 1) {
		float x = __shfl_xor_sync(0xffffffffu, best, o);
		int j = __shfl_xor_sync(0xffffffffu, idx, o);
		if (x > best || (x == best && j < idx)) {
			best = x;
			idx = j;
		}
	}
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	if (lane == 0) {
		bv[warp] = best;
		bi[warp] = idx;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		for (int w = 1; w < nw; w++)
			if (bv[w] > best || (bv[w] == best && bi[w] < idx)) {
				best = bv[w];
				idx = bi[w];
			}
		// All -inf or NaN rows: fall back to token 0 like a CPU argmax.
		tok[r] = idx == 0x7fffffff ? 0 : idx;
	}
}

__device__ __forceinline__ u64 cand_key(float p, int j) {
	return ((u64)__float_as_uint(p) << 32) | (u64)(0xFFFFFFFFu - (u32)j);
}

__device__ __forceinline__ u32 block_sum_u32(u32 v, u32 *scratch) {
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	__syncthreads();
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	v = lane < nw ? scratch[lane] : 0u;
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

// sample_rows: one draw per row from probs (softmax_temp_rows output).
//   top_k: keep the k best (0 or >= V: off). top_p in (0, 1): keep the
//   shortest best-first prefix of the kept tokens whose mass reaches top_p
//   times their total (else off). u[r] in [0, 1) from the host RNG.
//   When no filter is active the draw walks tokens in id order (as the CPU
//   does), else in candidate order; in both it picks the first token whose
//   running mass exceeds u * total (tokens with p = 0 are never picked).
//   tok[r] = the token, logp[r] = log(p_tok / total kept mass).
//   grid (R), block 512.
extern "C" __global__ void sample_rows(int *tok, float *logp, const float *probs, const float *u, int R, int V,
	int top_k, float top_p) {
	__shared__ double dscratch[32];
	__shared__ u32 uscratch[32];
	__shared__ unsigned long long smin;
	int r = blockIdx.x;
	if (r >= R) return;
	const float *p = probs + (long long)r * V;
	bool use_k = top_k > 0 && top_k < V;
	bool use_p = top_p > 0.f && top_p < 1.f;

	// kmin: candidates are the tokens with key >= kmin.
	u64 kmin = 0;
	if (use_k) {
		for (int bit = 63; bit >= 0; bit--) {
			u64 t = kmin | (1ull << bit);
			u32 c = 0;
			for (int j = threadIdx.x; j < V; j += blockDim.x) c += cand_key(p[j], j) >= t;
			if (block_sum_u32(c, uscratch) >= (u32)top_k) kmin = t;
		}
	}
	if (use_p) {
		double tot = 0.0;
		for (int j = threadIdx.x; j < V; j += blockDim.x)
			if (cand_key(p[j], j) >= kmin) tot += p[j];
		double thr = (double)top_p * block_sum_d(tot, dscratch);
		// The largest K with mass(candidates with key >= K) >= thr; it is at
		// least kmin because all candidates together reach thr.
		u64 kp = 0;
		for (int bit = 63; bit >= 0; bit--) {
			u64 t = kp | (1ull << bit);
			double s = 0.0;
			for (int j = threadIdx.x; j < V; j += blockDim.x) {
				u64 key = cand_key(p[j], j);
				if (key >= kmin && key >= t) s += p[j];
			}
			if (block_sum_d(s, dscratch) >= thr) kp = t;
		}
		kmin = kp > kmin ? kp : kmin;
	}
	double tot = 0.0;
	for (int j = threadIdx.x; j < V; j += blockDim.x)
		if (cand_key(p[j], j) >= kmin) tot += p[j];
	double total = block_sum_d(tot, dscratch);
	double target = (double)u[r] * total;

	int pick = -1;
	if (!use_k && !use_p) {
		// Id order: the largest J with mass(ids < J) <= target is the first
		// token whose running mass exceeds target.
		u32 J = 0;
		for (int bit = 31; bit >= 0; bit--) {
			u32 t = J | (1u << bit);
			if (t > (u32)V) continue;
			double s = 0.0;
			for (int j = threadIdx.x; j < V && j < (int)t; j += blockDim.x) s += p[j];
			if (block_sum_d(s, dscratch) <= target) J = t;
		}
		if (J < (u32)V) pick = (int)J;
	} else {
		// Candidate order: the largest K with mass(key >= K) > target is
		// the key of the token drawn.
		u64 K = 0;
		bool found = false;
		for (int bit = 63; bit >= 0; bit--) {
			u64 t = K | (1ull << bit);
			double s = 0.0;
			for (int j = threadIdx.x; j < V; j += blockDim.x) {
				u64 key = cand_key(p[j], j);
				if (key >= kmin && key >= t) s += p[j];
			}
			if (block_sum_d(s, dscratch) > target) {
				K = t;
				found = true;
			}
		}
		if (found || total > target) pick = (int)(0xFFFFFFFFu - (u32)K);
	}
	if (pick < 0) {
		// Rounding left target >= total: the CPU keeps the last positive
		// token it walked, i.e. the worst-ordered positive candidate.
		if (threadIdx.x == 0) smin = ~0ull;
		__syncthreads();
		for (int j = threadIdx.x; j < V; j += blockDim.x) {
			u64 key = cand_key(p[j], j);
			bool ok = p[j] > 0.f && key >= kmin;
			if (ok) atomicMin(&smin, (unsigned long long)(!use_k && !use_p ? (u64)(V - 1 - j) : key));
		}
		__syncthreads();
		u64 k = smin;
		pick = (!use_k && !use_p) ? (int)(V - 1 - (long long)k) : (int)(0xFFFFFFFFu - (u32)k);
		if (k == ~0ull) pick = 0; // all-zero row (cannot happen after softmax)
	}
	if (threadIdx.x == 0) {
		tok[r] = pick;
		logp[r] = (float)log((double)p[pick] / total);
	}
}
