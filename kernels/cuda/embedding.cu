// embedding.cu: token embedding gather and its gradient scatter.
//
// embedding_fwd: out (N, C) bf16 = table[ids] with table (V, C) bf16.
//   grid (N), block 256 (any multiple of 32). An id outside [0, V) writes a
//   zero row and sets *err = row+1 (engine.EmbeddingForward panics there).
extern "C" __global__ void embedding_fwd(bf16_t *out, const bf16_t *table, const int *ids, int n, int C, int V, int *err) {
	int r = blockIdx.x;
	if (r >= n) return;
	int id = ids[r];
	bf16_t *o = out + (long long)r * C;
	if (id < 0 || id >= V) {
		if (threadIdx.x == 0) set_err(err, r);
		for (int j = threadIdx.x; j < C; j += blockDim.x) o[j] = 0;
		return;
	}
	const bf16_t *src = table + (long long)id * C;
	for (int j = threadIdx.x; j < C; j += blockDim.x) o[j] = src[j];
}

// embedding_bwd: dtable (V, C) fp32 += dout[r] (bf16) for every row r with
// id ids[r] (engine.EmbeddingBackward), deterministically: the host groups
// the rows by id (kernels.EmbeddingBwdPlan, a stable sort of the batch's
// ids): uniq[u] is the u-th distinct valid id and rows[offsets[u] ..
// offsets[u+1]) are its rows in increasing order. Block u owns dtable row
// uniq[u] alone and adds its rows in that order, one fp32 rounding per add
// as the CPU loop, so the result is bitwise the CPU's and the same on
// every run (fp32 atomics would sum repeated ids in a random order).
// Invalid ids are left out by the plan (the forward reported them).
//   grid (nuniq), block 256.
extern "C" __global__ void embedding_bwd(float *dtable, const bf16_t *dout, const int *uniq, const int *offsets,
	const int *rows, int nuniq, int C) {
	int u = blockIdx.x;
	if (u >= nuniq) return;
	float *d = dtable + (long long)uniq[u] * C;
	int r0 = offsets[u], r1 = offsets[u + 1];
	for (int j = threadIdx.x; j < C; j += blockDim.x) {
		float acc = d[j];
		for (int i = r0; i < r1; i++) acc += bf2f(dout[(long long)rows[i] * C + j]);
		d[j] = acc;
	}
}
