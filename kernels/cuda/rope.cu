// rope.cu: rotary position embedding, rotate-half convention of HF
// Llama/Qwen2 (engine.RoPE).
//
// rope: rotates x in place. x holds n rows of `heads` heads of dimension D
//   (D even) starting at x + row*ld (ld >= heads*D, so q and k inside a fused
//   qkv buffer can be rotated in place). pos (n) are explicit positions
//   (packed rows restart them); cos/sin (P, D/2) fp32 are engine.RoPETable.
//   For pair i of a head: a = v[i], b = v[i + D/2],
//     v[i] = a*cos - b*sin', v[i+D/2] = b*cos + a*sin', sin' = +-sin
//   with the negative sign when inverse != 0 (the backward: the rotation is
//   orthogonal, its transpose is the inverse rotation).
//   A position outside [0, P) leaves the row unchanged and sets *err.
//   grid (n), block 128: threads loop over heads*D/2 pairs.
extern "C" __global__ void rope(bf16_t *x, const int *pos, const float *cos_t, const float *sin_t, int n, int heads,
	int D, long long ld, int P, int inverse, int *err) {
	int r = blockIdx.x;
	if (r >= n) return;
	int p = pos[r];
	if (p < 0 || p >= P) {
		if (threadIdx.x == 0) set_err(err, r);
		return;
	}
	int half = D / 2;
	const float *cr = cos_t + (long long)p * half;
	const float *sr = sin_t + (long long)p * half;
	float sign = inverse ? -1.f : 1.f;
	bf16_t *row = x + (long long)r * ld;
	for (int t = threadIdx.x; t < heads * half; t += blockDim.x) {
		int h = t / half, i = t % half;
		bf16_t *v = row + h * D;
		float a = bf2f(v[i]), b = bf2f(v[i + half]);
		float c = cr[i], s = sign * sr[i];
		v[i] = f2bf(a * c - b * s);
		v[i + half] = f2bf(b * c + a * s);
	}
}
