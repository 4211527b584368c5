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
// id ids[r] (engine.EmbeddingBackward). fp32 atomics: the sum order of
// repeated ids is not fixed, so results agree with the CPU to fp32 rounding,
// not bitwise. Invalid ids are skipped (the forward already reported them).
//   grid (N), block 256.
extern "C" __global__ void embedding_bwd(float *dtable, const bf16_t *dout, const int *ids, int n, int C, int V) {
	int r = blockIdx.x;
	if (r >= n) return;
	int id = ids[r];
	if (id < 0 || id >= V) return;
	float *d = dtable + (long long)id * C;
	const bf16_t *g = dout + (long long)r * C;
	for (int j = threadIdx.x; j < C; j += blockDim.x) atomicAdd(&d[j], bf2f(g[j]));
}
