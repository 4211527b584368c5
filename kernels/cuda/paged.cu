// paged.cu: the paged KV cache of the rollout engine (model/qwen2's
// KVCache and pagedAttention).
//
// Cache layout per layer, as on the CPU: (block, kv head, slot, D) bf16, so
// one (block, kv head) pair is a contiguous block_size*D run. Sequence s
// owns block ids block_tables[s*max_blocks + b] for its positions
// [b*block_size, (b+1)*block_size). A step has `rows` new tokens; row r
// belongs to sequence row_seq[r] and sits at position row_pos[r].

// paged_kv_write stores the new tokens' keys and values (after RoPE) in the
// cache. k, v: (rows, ldk) bf16 with kv head hk at column hk*D.
//   grid (rows), block 128 (threads over Hk*D).
extern "C" __global__ void paged_kv_write(bf16_t *kc, bf16_t *vc, const bf16_t *k, const bf16_t *v, long long ldk,
	const int *block_tables, int max_blocks, const int *row_seq, const int *row_pos, int rows, int Hk, int D,
	int block_size) {
	int r = blockIdx.x;
	if (r >= rows) return;
	int p = row_pos[r];
	int blk = block_tables[(long long)row_seq[r] * max_blocks + p / block_size], slot = p % block_size;
	for (int t = threadIdx.x; t < Hk * D; t += blockDim.x) {
		int hk = t / D, d = t % D;
		long long off = (((long long)blk * Hk + hk) * block_size + slot) * D + d;
		kc[off] = k[(long long)r * ldk + t];
		vc[off] = v[(long long)r * ldk + t];
	}
}

// paged_attn: out (rows, ldo) bf16, query head h of row r attends to the
// cached positions 0..row_pos[r] of its sequence (so one kernel serves
// decode and chunked prefill into an existing cache; the row's own key must
// already be written by paged_kv_write).
//   q: (rows, ldq) bf16. D <= 256 (PG_MAXD). scale = 1/sqrt(D). Rows with
//   row_seq[r] < 0 are skipped.
//   grid (rows, Hq), block exactly 128 = 4 warps (PG_WARPS: the shared
//   merge buffers and the position stride assume it; the Go launcher
//   rejects any other block and D > 256). Warp w takes positions w, w+4, ...
//   with lanes over head dims and its own online softmax; the four partial
//   (max, sum, acc) states are merged through shared memory at the end.
#define PG_MAXD 256
#define PG_WARPS 4
extern "C" __global__ void paged_attn(bf16_t *out, long long ldo, const bf16_t *q, long long ldq, const bf16_t *kc,
	const bf16_t *vc, const int *block_tables, int max_blocks, const int *row_seq, const int *row_pos, int rows,
	int Hq, int Hk, int D, int block_size, float scale) {
	__shared__ float sm_m[PG_WARPS], sm_l[PG_WARPS];
	__shared__ float sm_acc[PG_WARPS][PG_MAXD];
	int r = blockIdx.x, h = blockIdx.y;
	// A row whose sequence id is negative is skipped (its output is left
	// alone): a fresh prefill whose attention the caller computed with the
	// flash kernels.
	if (r >= rows || row_seq[r] < 0) return;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int hk = h / (Hq / Hk);
	int ctx = row_pos[r] + 1;
	const int *table = block_tables + (long long)row_seq[r] * max_blocks;
	float qv[PG_MAXD / 32], acc[PG_MAXD / 32];
	const bf16_t *qr = q + (long long)r * ldq + h * D;
	for (int t = 0; t < PG_MAXD / 32; t++) {
		int d = lane + 32 * t;
		qv[t] = d < D ? bf2f(qr[d]) * scale : 0.f;
		acc[t] = 0.f;
	}
	float m = -PC_INF, l = 0.f;
	for (int j = warp; j < ctx; j += PG_WARPS) {
		long long base = (((long long)table[j / block_size] * Hk + hk) * block_size + j % block_size) * D;
		float s = 0.f;
		for (int t = 0; t < PG_MAXD / 32; t++) {
			int d = lane + 32 * t;
			if (d < D) s += qv[t] * bf2f(kc[base + d]);
		}
		s = warp_sum(s);
		float mn = fmaxf(m, s);
		float corr = expf(m - mn), p = expf(s - mn);
		l = l * corr + p;
		for (int t = 0; t < PG_MAXD / 32; t++) {
			int d = lane + 32 * t;
			acc[t] = acc[t] * corr + (d < D ? p * bf2f(vc[base + d]) : 0.f);
		}
		m = mn;
	}
	if (lane == 0) {
		sm_m[warp] = m;
		sm_l[warp] = l;
	}
	for (int t = 0; t < PG_MAXD / 32; t++) {
		int d = lane + 32 * t;
		if (d < D) sm_acc[warp][d] = acc[t];
	}
	__syncthreads();
	// A warp that saw no position (ctx < 4) has m = -inf and l = 0; its
	// weight exp(-inf - M) is 0.
	float M = -PC_INF;
	for (int w = 0; w < PG_WARPS; w++) M = fmaxf(M, sm_m[w]);
	float L = 0.f;
	for (int w = 0; w < PG_WARPS; w++) L += sm_l[w] * expf(sm_m[w] - M);
	bf16_t *o = out + (long long)r * ldo + h * D;
	for (int d = threadIdx.x; d < D; d += blockDim.x) {
		float a = 0.f;
		for (int w = 0; w < PG_WARPS; w++) a += sm_acc[w][d] * expf(sm_m[w] - M);
		o[d] = f2bf(a / L);
	}
}
