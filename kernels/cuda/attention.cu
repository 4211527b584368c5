// attention.cu: causal self-attention over variable-length packed sequences
// with grouped-query attention (engine.AttentionForward/Backward).
//
// Shared layout of every kernel here:
//   - tokens of all sequences are flattened: Ntok rows. Sequence s owns rows
//     [cu_seqlens[s], cu_seqlens[s+1]); a query attends to the keys of its
//     own sequence at positions <= its own (causal). A packed training row
//     with several documents is several sequences (kernels.AttnVarlen builds
//     cu_seqlens from engine's per-token segment ids).
//   - q: row r, head h at q + r*ldq + h*D; k, v: row r, kv head hk at
//     k + r*ldk + hk*D; out: out + r*ldo + h*D. Strides let q/k/v be views
//     of one fused qkv buffer. bf16.
//   - kv head of query head h: hk = h / (Hq/Hk).
//   - lse (B, Hq, T) fp32, natural log: log sum_j exp(scale * q.k_j), the
//     CPU engine's layout (engine.AttentionForward): the Ntok = B*T rows are
//     B rows of T tokens, and row r, head h is at lse_at(r, h, Hq, T). A
//     batch of arbitrary varlen sequences is B = 1, T = Ntok, which makes it
//     (Hq, Ntok). The dsum buffer of the backward has the same layout.
//   - D <= ATT_MAXD (SIMT kernels; the Go launcher rejects larger D).
//   - scale = 1/sqrt(D) is passed in.

__device__ __forceinline__ int seq_of(const int *cu, int nseq, int r) {
	// Largest s with cu[s] <= r (binary search; cu is non-decreasing).
	int lo = 0, hi = nseq - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) >> 1;
		if (cu[mid] <= r) lo = mid; else hi = mid - 1;
	}
	return lo;
}

// lse_at indexes an lse/dsum buffer of layout (B, Hq, T).
__device__ __forceinline__ long long lse_at(int r, int h, int Hq, int T) {
	return ((long long)(r / T) * Hq + h) * T + r % T;
}

#define ATT_MAXD 256
#define ATT_PER_LANE (ATT_MAXD / 32)

// ---------------------------------------------------------------------------
// SIMT reference kernels: any D <= 256 (D need not be a multiple of 32),
// fp32 throughout, one warp per (row, head), lanes over head dims. Simple
// and slow (O(L) dependent warp reductions per row); the tensor-core kernel
// below is the fast forward path for D = 64 and 128.
// ---------------------------------------------------------------------------

// attn_fwd_simt: grid (ceil(Ntok/4), Hq), block 128 (4 warps = 4 rows).
extern "C" __global__ void attn_fwd_simt(bf16_t *out, long long ldo, float *lse, const bf16_t *q, long long ldq,
	const bf16_t *k, const bf16_t *v, long long ldk, const int *cu_seqlens, int nseq, int Ntok, int T, int Hq, int Hk,
	int D, float scale) {
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int r = blockIdx.x * 4 + warp, h = blockIdx.y;
	if (r >= Ntok) return;
	int hk = h / (Hq / Hk);
	int s0 = cu_seqlens[seq_of(cu_seqlens, nseq, r)];
	float qv[ATT_PER_LANE], acc[ATT_PER_LANE];
	const bf16_t *qr = q + (long long)r * ldq + h * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		qv[t] = d < D ? bf2f(qr[d]) * scale : 0.f;
		acc[t] = 0.f;
	}
	float m = -PC_INF, l = 0.f;
	for (int j = s0; j <= r; j++) {
		const bf16_t *kr = k + (long long)j * ldk + hk * D;
		float s = 0.f;
		for (int t = 0; t < ATT_PER_LANE; t++) {
			int d = lane + 32 * t;
			if (d < D) s += qv[t] * bf2f(kr[d]);
		}
		s = warp_sum(s);
		float mn = fmaxf(m, s);
		float corr = expf(m - mn), p = expf(s - mn);
		l = l * corr + p;
		const bf16_t *vr = v + (long long)j * ldk + hk * D;
		for (int t = 0; t < ATT_PER_LANE; t++) {
			int d = lane + 32 * t;
			acc[t] = acc[t] * corr + (d < D ? p * bf2f(vr[d]) : 0.f);
		}
		m = mn;
	}
	float inv = 1.f / l;
	bf16_t *o = out + (long long)r * ldo + h * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		if (d < D) o[d] = f2bf(acc[t] * inv);
	}
	if (lane == 0) lse[lse_at(r, h, Hq, T)] = m + logf(l);
}

// attn_bwd_dsum: dsum (B, Hq, T) fp32 = rowsum(dout * out) per (row, head),
// the "D_i" term of the softmax backward. dout, out bf16 with stride ldo.
//   grid (ceil(Ntok/4), Hq), block 128.
extern "C" __global__ void attn_bwd_dsum(float *dsum, const bf16_t *dout, const bf16_t *out, long long ldo, int Ntok,
	int T, int Hq, int D) {
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int r = blockIdx.x * 4 + warp, h = blockIdx.y;
	if (r >= Ntok) return;
	const bf16_t *a = dout + (long long)r * ldo + h * D;
	const bf16_t *b = out + (long long)r * ldo + h * D;
	float s = 0.f;
	for (int d = lane; d < D; d += 32) s += bf2f(a[d]) * bf2f(b[d]);
	s = warp_sum(s);
	if (lane == 0) dsum[lse_at(r, h, Hq, T)] = s;
}

// attn_bwd_dq_simt: dq (overwritten, bf16, stride ldq) for query row i,
// head h: dq_i = scale * sum_j ds_ij k_j with p_ij = exp(scale q_i.k_j -
// lse_i), dp_ij = dout_i . v_j, ds_ij = p_ij (dp_ij - dsum_i).
//   grid (ceil(Ntok/4), Hq), block 128.
extern "C" __global__ void attn_bwd_dq_simt(bf16_t *dq, const bf16_t *dout, long long ldo, const float *lse,
	const float *dsum, const bf16_t *q, long long ldq, const bf16_t *k, const bf16_t *v, long long ldk,
	const int *cu_seqlens, int nseq, int Ntok, int T, int Hq, int Hk, int D, float scale) {
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int r = blockIdx.x * 4 + warp, h = blockIdx.y;
	if (r >= Ntok) return;
	int hk = h / (Hq / Hk);
	int s0 = cu_seqlens[seq_of(cu_seqlens, nseq, r)];
	float qv[ATT_PER_LANE], gv[ATT_PER_LANE], acc[ATT_PER_LANE];
	const bf16_t *qr = q + (long long)r * ldq + h * D;
	const bf16_t *gr = dout + (long long)r * ldo + h * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		qv[t] = d < D ? bf2f(qr[d]) * scale : 0.f;
		gv[t] = d < D ? bf2f(gr[d]) : 0.f;
		acc[t] = 0.f;
	}
	float li = lse[lse_at(r, h, Hq, T)], di = dsum[lse_at(r, h, Hq, T)];
	for (int j = s0; j <= r; j++) {
		const bf16_t *kr = k + (long long)j * ldk + hk * D;
		const bf16_t *vr = v + (long long)j * ldk + hk * D;
		float s = 0.f, dp = 0.f;
		for (int t = 0; t < ATT_PER_LANE; t++) {
			int d = lane + 32 * t;
			if (d < D) {
				s += qv[t] * bf2f(kr[d]);
				dp += gv[t] * bf2f(vr[d]);
			}
		}
		s = warp_sum(s);
		dp = warp_sum(dp);
		float ds = expf(s - li) * (dp - di);
		for (int t = 0; t < ATT_PER_LANE; t++) {
			int d = lane + 32 * t;
			if (d < D) acc[t] += ds * bf2f(kr[d]);
		}
	}
	bf16_t *o = dq + (long long)r * ldq + h * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		if (d < D) o[d] = f2bf(acc[t] * scale);
	}
}

// attn_bwd_dkv_simt: dk, dv (overwritten, bf16, stride ldk) for key row j,
// kv head hk: summed over the query heads of the group and the queries
// i >= j of j's sequence: dv_j += p_ij dout_i, dk_j += scale ds_ij q_i.
// No atomics: each warp owns its (j, hk) outputs, so results are
// deterministic.
//   grid (ceil(Ntok/4), Hk), block 128.
extern "C" __global__ void attn_bwd_dkv_simt(bf16_t *dk, bf16_t *dv, const bf16_t *dout, long long ldo,
	const float *lse, const float *dsum, const bf16_t *q, long long ldq, const bf16_t *k, const bf16_t *v,
	long long ldk, const int *cu_seqlens, int nseq, int Ntok, int T, int Hq, int Hk, int D, float scale) {
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int j = blockIdx.x * 4 + warp, hk = blockIdx.y;
	if (j >= Ntok) return;
	int group = Hq / Hk;
	int s1 = cu_seqlens[seq_of(cu_seqlens, nseq, j) + 1];
	float kv[ATT_PER_LANE], vv[ATT_PER_LANE], dka[ATT_PER_LANE], dva[ATT_PER_LANE];
	const bf16_t *kr = k + (long long)j * ldk + hk * D;
	const bf16_t *vr = v + (long long)j * ldk + hk * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		kv[t] = d < D ? bf2f(kr[d]) : 0.f;
		vv[t] = d < D ? bf2f(vr[d]) : 0.f;
		dka[t] = 0.f;
		dva[t] = 0.f;
	}
	for (int h = hk * group; h < (hk + 1) * group; h++) {
		for (int i = j; i < s1; i++) {
			const bf16_t *qr = q + (long long)i * ldq + h * D;
			const bf16_t *gr = dout + (long long)i * ldo + h * D;
			float s = 0.f, dp = 0.f;
			for (int t = 0; t < ATT_PER_LANE; t++) {
				int d = lane + 32 * t;
				if (d < D) {
					s += bf2f(qr[d]) * kv[t];
					dp += bf2f(gr[d]) * vv[t];
				}
			}
			s = warp_sum(s) * scale;
			dp = warp_sum(dp);
			float p = expf(s - lse[lse_at(i, h, Hq, T)]);
			float ds = p * (dp - dsum[lse_at(i, h, Hq, T)]);
			for (int t = 0; t < ATT_PER_LANE; t++) {
				int d = lane + 32 * t;
				if (d < D) {
					dva[t] += p * bf2f(gr[d]);
					dka[t] += ds * bf2f(qr[d]);
				}
			}
		}
	}
	bf16_t *ko = dk + (long long)j * ldk + hk * D;
	bf16_t *vo = dv + (long long)j * ldk + hk * D;
	for (int t = 0; t < ATT_PER_LANE; t++) {
		int d = lane + 32 * t;
		if (d < D) {
			ko[d] = f2bf(dka[t] * scale);
			vo[d] = f2bf(dva[t]);
		}
	}
}

// ---------------------------------------------------------------------------
// Tensor-core forward (flash-attention-2 style) for D in {64, 128}.
//
// Launch: grid (ntiles, Hq), block 128 (4 warps), dynamic shared memory
//   (ATT_BR + 2*ATT_BC) * (D + 8) * 2 bytes = 27648 (D=64), 52224 (D=128;
//   above 48 KiB: cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES first).
// tiles[2t] = sequence, tiles[2t+1] = first query position (relative to the
//   sequence, a multiple of ATT_BR) of query tile t (kernels.AttnVarlen).
// Requirements: ldq, ldk, ldo multiples of 8 and q, k, v 16-byte aligned
//   (cp.async moves 16-byte chunks).
// Each warp owns 16 query rows. Per key tile of ATT_BC keys: S = Q K^T with
// mma.m16n8k16 (bf16 in, fp32 accumulate), causal mask, online softmax in
// the log2 domain, P rounded to bf16 and O += P V with mma again. Tiles
// beyond the sequence are zero-filled by cp.async's src-size operand.
// ---------------------------------------------------------------------------

#define ATT_BR 64
#define ATT_BC 64
#define ATT_PAD 8

extern __shared__ __align__(16) unsigned char pc_dyn_smem[];

__device__ __forceinline__ u32 smem_u32(const void *p) {
	u32 a;
	asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
	return a;
}

// cp_async16 copies 16 bytes global -> shared, or writes 16 zero bytes when
// valid is false (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
	int n = valid ? 16 : 0;
	// "memory": the asm writes shared memory the compiler cannot see
	// through the 32-bit address, so without the clobber it may keep stale
	// shared values in registers or move accesses across the copy.
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(n) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
	asm volatile("cp.async.commit_group;\n" ::: "memory");
	asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

// mma_bf16: c += A(16x16, row) * B(16x8, col), fp32 accumulate. Fragment
// layout (PTX ISA, mma.m16n8k16 .bf16), g = lane/4, t = lane%4:
//   a0: A[g][2t..2t+1]   a1: A[g+8][2t..2t+1]   a2: A[g][2t+8..]   a3: A[g+8][2t+8..]
//   b0: B[2t..2t+1][g]   b1: B[2t+8..2t+9][g]
//   c0,c1: C[g][2t..2t+1]   c2,c3: C[g+8][2t..2t+1]
// (lower index in the low 16 bits of each register).
__device__ __forceinline__ void mma_bf16(float *c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
		: "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		: "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// load_tile fills rows [0, R) of a shared tile (row stride D+ATT_PAD) from
// sequence rows row0.. of src (stride ld); rows at or beyond L are zeros.
template <int D, int R>
__device__ __forceinline__ void load_tile(bf16_t *dst, const bf16_t *src, long long ld, int row0, int L) {
	const int chunks = D / 8;
	for (int c = threadIdx.x; c < R * chunks; c += blockDim.x) {
		int r = c / chunks, col = (c % chunks) * 8;
		bool valid = row0 + r < L;
		const bf16_t *g = valid ? src + (long long)(row0 + r) * ld + col : src;
		cp_async16(dst + r * (D + ATT_PAD) + col, g, valid);
	}
}

template <int D>
__device__ __forceinline__ void attn_fwd_mma(bf16_t *out, long long ldo, float *lse, const bf16_t *q, long long ldq,
	const bf16_t *k, const bf16_t *v, long long ldk, const int *cu_seqlens, const int *tiles, int Ntok, int T, int Hq,
	int Hk, float scale) {
	const int LDS = D + ATT_PAD;
	bf16_t *sQ = (bf16_t *)pc_dyn_smem;
	bf16_t *sK = sQ + ATT_BR * LDS;
	bf16_t *sV = sK + ATT_BC * LDS;
	int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1], h = blockIdx.y;
	int s0 = cu_seqlens[seq], L = cu_seqlens[seq + 1] - s0;
	int hk = h / (Hq / Hk);
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
	const bf16_t *qb = q + (long long)s0 * ldq + h * D;
	const bf16_t *kb = k + (long long)s0 * ldk + hk * D;
	const bf16_t *vb = v + (long long)s0 * ldk + hk * D;
	load_tile<D, ATT_BR>(sQ, qb, ldq, q0, L);

	const float sl2 = scale * PC_LOG2E;
	float o[D / 8][4];
	for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
	float mrow[2] = {-PC_INF, -PC_INF}, lrow[2] = {0.f, 0.f};
	int qrow[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
	int kend = min(q0 + ATT_BR, L);
	const bf16_t *wq = sQ + (warp * 16) * LDS;

	for (int kt0 = 0; kt0 < kend; kt0 += ATT_BC) {
		__syncthreads(); // all warps are done with the previous K/V tile
		load_tile<D, ATT_BC>(sK, kb, ldk, kt0, L);
		load_tile<D, ATT_BC>(sV, vb, ldk, kt0, L);
		cp_async_wait_all();
		__syncthreads();

		float s[ATT_BC / 8][4];
		for (int nt = 0; nt < ATT_BC / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
		for (int kc = 0; kc < D / 16; kc++) {
			int c = kc * 16 + tg * 2;
			u32 a0 = *(const u32 *)(wq + g * LDS + c);
			u32 a1 = *(const u32 *)(wq + (g + 8) * LDS + c);
			u32 a2 = *(const u32 *)(wq + g * LDS + c + 8);
			u32 a3 = *(const u32 *)(wq + (g + 8) * LDS + c + 8);
			for (int nt = 0; nt < ATT_BC / 8; nt++) {
				const bf16_t *kr = sK + (nt * 8 + g) * LDS + c;
				mma_bf16(s[nt], a0, a1, a2, a3, *(const u32 *)kr, *(const u32 *)(kr + 8));
			}
		}
		// Scale to the log2 domain and mask (causal, and keys past L).
		float mx[2] = {-PC_INF, -PC_INF};
		for (int nt = 0; nt < ATT_BC / 8; nt++) {
			for (int e = 0; e < 4; e++) {
				int key = kt0 + nt * 8 + tg * 2 + (e & 1);
				int row = qrow[e >> 1];
				float x = s[nt][e] * sl2;
				if (key > row || key >= L) x = -PC_INF;
				s[nt][e] = x;
				mx[e >> 1] = fmaxf(mx[e >> 1], x);
			}
		}
		for (int r = 0; r < 2; r++) {
			// The four lanes of a quad hold one row between them.
			mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
			mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
			float mn = fmaxf(mrow[r], mx[r]);
			float base = mn == -PC_INF ? 0.f : mn; // fully masked so far: avoid inf - inf
			float corr = exp2f(mrow[r] - base);
			float sum = 0.f;
			for (int nt = 0; nt < ATT_BC / 8; nt++) {
				float p0 = exp2f(s[nt][2 * r] - base), p1 = exp2f(s[nt][2 * r + 1] - base);
				s[nt][2 * r] = p0;
				s[nt][2 * r + 1] = p1;
				sum += p0 + p1;
			}
			// lrow stays a per-lane partial sum; the quad reduces it at the end.
			lrow[r] = lrow[r] * corr + sum;
			for (int dt = 0; dt < D / 8; dt++) {
				o[dt][2 * r] *= corr;
				o[dt][2 * r + 1] *= corr;
			}
			mrow[r] = mn;
		}
		// O += P V. The S accumulators of n-tiles 2kc and 2kc+1 are exactly
		// the A fragment of P's 16-key chunk kc.
		for (int kc = 0; kc < ATT_BC / 16; kc++) {
			u32 a0 = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
			u32 a1 = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
			u32 a2 = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
			u32 a3 = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
			const bf16_t *vr = sV + (kc * 16 + tg * 2) * LDS + g;
			for (int dt = 0; dt < D / 8; dt++) {
				const bf16_t *p = vr + dt * 8;
				u32 b0 = (u32)p[0] | ((u32)p[LDS] << 16);
				u32 b1 = (u32)p[8 * LDS] | ((u32)p[9 * LDS] << 16);
				mma_bf16(o[dt], a0, a1, a2, a3, b0, b1);
			}
		}
	}
	for (int r = 0; r < 2; r++) {
		float l = lrow[r];
		l += __shfl_xor_sync(0xffffffffu, l, 1);
		l += __shfl_xor_sync(0xffffffffu, l, 2);
		int row = qrow[r];
		if (row >= L) continue;
		float inv = 1.f / l;
		bf16_t *orow = out + (long long)(s0 + row) * ldo + h * D + tg * 2;
		for (int dt = 0; dt < D / 8; dt++)
			*(u32 *)(orow + dt * 8) = pack_bf16x2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
		if (tg == 0) lse[lse_at(s0 + row, h, Hq, T)] = (mrow[r] + log2f(l)) * PC_LN2;
	}
}

extern "C" __global__ void __launch_bounds__(128) attn_fwd_mma_d64(bf16_t *out, long long ldo, float *lse,
	const bf16_t *q, long long ldq, const bf16_t *k, const bf16_t *v, long long ldk, const int *cu_seqlens,
	const int *tiles, int Ntok, int T, int Hq, int Hk, float scale) {
	attn_fwd_mma<64>(out, ldo, lse, q, ldq, k, v, ldk, cu_seqlens, tiles, Ntok, T, Hq, Hk, scale);
}

extern "C" __global__ void __launch_bounds__(128) attn_fwd_mma_d128(bf16_t *out, long long ldo, float *lse,
	const bf16_t *q, long long ldq, const bf16_t *k, const bf16_t *v, long long ldk, const int *cu_seqlens,
	const int *tiles, int Ntok, int T, int Hq, int Hk, float scale) {
	attn_fwd_mma<128>(out, ldo, lse, q, ldq, k, v, ldk, cu_seqlens, tiles, Ntok, T, Hq, Hk, scale);
}
