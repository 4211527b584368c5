//go:build cgo

package kernels

/*
#cgo CFLAGS: -O3 -fopenmp-simd
#cgo LDFLAGS: -lm
// Without this GCC will not if-convert the float compares of the clamps,
// and no loop that calls pc_expf vectorises; without errno, sqrtf in a loop
// vectorises too (cgo rejects both flags on the command line).
#pragma GCC optimize ("no-trapping-math", "no-math-errno")
#include <math.h>
#include <stdint.h>
#include <string.h>

// Each kernel is compiled twice on x86-64 GCC with glibc, for Haswell (AVX2 + FMA) and
// for the baseline ISA; the loader picks the clone the CPU supports, so one
// binary runs everywhere and still uses 8-wide vectors where it can.
// Clones need ifunc, which glibc on Linux has and musl and MinGW lack.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && defined(__GLIBC__)
#define PC_VEC __attribute__((target_clones("arch=haswell", "default")))
#else
#define PC_VEC
#endif

// pc_expf is Expf (mathf.go) written without branches so loops over it
// vectorise: clamp, round x/ln2 with the 1.5*2^23 trick, Cephes polynomial,
// scale by 2^n built in the exponent bits; below -87.33654 the result is 0.
// always_inline lets the Haswell clones inline it despite its default
// target (GCC refuses otherwise, and the loops stay scalar).
static inline __attribute__((always_inline)) float pc_expf(float x) {
	const float magic = 12582912.0f;
	float xc = x > 88.72283f ? 88.72283f : x;
	float t = xc * 1.442695041f + magic;
	float n = t - magic;
	float r = xc - n * 0.693359375f - n * -2.12194440e-4f;
	float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
		1.6666665459e-1f) * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	uint32_t tb;
	memcpy(&tb, &t, 4);
	uint32_t eb = (tb - 0x4B400000u + 127u) << 23;
	float e;
	memcpy(&e, &eb, 4);
	return x < -87.33654f ? 0.0f : p * e;
}

PC_VEC static void pc_attn_softmax(float *s, int t, int r0, int r1, const int32_t *start, float *lse, int save) {
	for (int r = r0; r < r1; r++) {
		int i = r % t, j0 = start[i];
		float *row = s + (long)r * t;
		if (save) {
			float m = -INFINITY;
			#pragma omp simd reduction(max:m)
			for (int j = j0; j <= i; j++) m = row[j] > m ? row[j] : m;
			double sum = 0;
			#pragma omp simd reduction(+:sum)
			for (int j = j0; j <= i; j++) {
				float e = pc_expf(row[j] - m);
				row[j] = e;
				sum += e;
			}
			lse[r] = (float)((double)m + log(sum));
			float inv = (float)(1 / sum);
			#pragma omp simd
			for (int j = j0; j <= i; j++) row[j] *= inv;
		} else {
			float l = lse[r];
			#pragma omp simd
			for (int j = j0; j <= i; j++) row[j] = pc_expf(row[j] - l);
		}
		memset(row, 0, sizeof(float) * j0);
		memset(row + i + 1, 0, sizeof(float) * (t - i - 1));
	}
}

PC_VEC static void pc_attn_softmax_grad(float *dp, const float *p, int t, const float *dO, int d, const float *o, int ldo,
	int r0, int r1, const int32_t *start) {
	for (int r = r0; r < r1; r++) {
		int h = r / t, i = r % t, j0 = start[i];
		const float *dor = dO + (long)r * d, *orow = o + (long)i * ldo + (long)h * d;
		double di = 0;
		#pragma omp simd reduction(+:di)
		for (int k = 0; k < d; k++) di += (double)dor[k] * (double)orow[k];
		float dif = (float)di;
		const float *pr = p + (long)r * t;
		float *dr = dp + (long)r * t;
		#pragma omp simd
		for (int j = j0; j <= i; j++) dr[j] = pr[j] * (dr[j] - dif);
		memset(dr, 0, sizeof(float) * j0);
		memset(dr + i + 1, 0, sizeof(float) * (t - i - 1));
	}
}

PC_VEC static void pc_xent_rows(float *z, int v, int n, const int32_t *targets, double *loss, float scale, int grad) {
	for (int i = 0; i < n; i++) {
		float *zr = z + (long)i * v;
		int t = targets[i];
		if (t < 0) {
			loss[i] = 0;
			if (grad) memset(zr, 0, sizeof(float) * v);
			continue;
		}
		float zt = zr[t], m = zr[0];
		#pragma omp simd reduction(max:m)
		for (int j = 0; j < v; j++) m = zr[j] > m ? zr[j] : m;
		double se = 0;
		#pragma omp simd reduction(+:se)
		for (int j = 0; j < v; j++) {
			float e = pc_expf(zr[j] - m);
			zr[j] = e;
			se += e;
		}
		loss[i] = (double)m + log(se) - (double)zt;
		if (grad) {
			float k = (float)((double)scale / se);
			#pragma omp simd
			for (int j = 0; j < v; j++) zr[j] *= k;
			zr[t] -= scale;
		}
	}
}

PC_VEC static void pc_swiglu(float *out, float *sig, const float *gate, const float *up, long n) {
	if (sig) {
		#pragma omp simd
		for (long i = 0; i < n; i++) {
			float g = gate[i], s = 1.0f / (1.0f + pc_expf(-g));
			sig[i] = s;
			out[i] = g * s * up[i];
		}
	} else {
		#pragma omp simd
		for (long i = 0; i < n; i++) {
			float g = gate[i], s = 1.0f / (1.0f + pc_expf(-g));
			out[i] = g * s * up[i];
		}
	}
}

PC_VEC static void pc_swiglu_grad(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
	const float *sig, long n) {
	#pragma omp simd
	for (long i = 0; i < n; i++) {
		float g = gate[i];
		float s = sig ? sig[i] : 1.0f / (1.0f + pc_expf(-g));
		float d = dout[i];
		dup[i] = d * g * s;
		dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
	}
}

PC_VEC static void pc_rmsnorm(float *out, float *rstd, const float *x, const float *w, int c, int r0, int r1, double eps) {
	for (int r = r0; r < r1; r++) {
		const float *row = x + (long)r * c;
		double ss = 0;
		#pragma omp simd reduction(+:ss)
		for (int j = 0; j < c; j++) ss += (double)row[j] * (double)row[j];
		double s = 1 / sqrt(ss / c + eps);
		rstd[r] = (float)s;
		float *o = out + (long)r * c;
		#pragma omp simd
		for (int j = 0; j < c; j++) o[j] = (float)((double)row[j] * s * (double)w[j]);
	}
}

PC_VEC static void pc_rmsnorm_grad_x(float *dx, const float *dout, const float *x, const float *w, const float *rstd,
	int c, int r0, int r1) {
	for (int r = r0; r < r1; r++) {
		const float *xr = x + (long)r * c, *gr = dout + (long)r * c;
		double s = rstd[r], dot = 0;
		#pragma omp simd reduction(+:dot)
		for (int j = 0; j < c; j++) dot += (double)gr[j] * (double)w[j] * (double)xr[j];
		double k = s * s * s * dot / c;
		float *dr = dx + (long)r * c;
		#pragma omp simd
		for (int j = 0; j < c; j++) dr[j] += (float)(s * (double)w[j] * (double)gr[j] - k * (double)xr[j]);
	}
}

PC_VEC static void pc_rmsnorm_grad_w(float *dw, const float *dout, const float *x, const float *rstd, int n, int c,
	int c0, int c1) {
	enum { block = 64 };
	double acc[block];
	for (int b0 = c0; b0 < c1; b0 += block) {
		int b1 = b0 + block < c1 ? b0 + block : c1, nb = b1 - b0;
		memset(acc, 0, sizeof acc);
		for (int r = 0; r < n; r++) {
			double s = rstd[r];
			const float *xr = x + (long)r * c + b0, *gr = dout + (long)r * c + b0;
			#pragma omp simd
			for (int j = 0; j < nb; j++) acc[j] += (double)gr[j] * (double)xr[j] * s;
		}
		for (int j = 0; j < nb; j++) dw[b0 + j] += (float)acc[j];
	}
}

PC_VEC static void pc_rope(float *x, const int32_t *pos, int heads, int d, const float *ctab, const float *stab, float sign,
	int r0, int r1) {
	int half = d / 2;
	for (int r = r0; r < r1; r++) {
		const float *cr = ctab + (long)pos[r] * half, *sr = stab + (long)pos[r] * half;
		for (int h = 0; h < heads; h++) {
			float *v = x + (long)r * heads * d + (long)h * d;
			#pragma omp simd
			for (int i = 0; i < half; i++) {
				float a = v[i], b = v[i + half], s = sign * sr[i];
				v[i] = a * cr[i] - b * s;
				v[i + half] = b * cr[i] + a * s;
			}
		}
	}
}

PC_VEC static void pc_add(float *out, const float *a, const float *b, long n) {
	#pragma omp simd
	for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// GCC will not vectorise sqrtf without -fno-math-errno, which neither cgo
// nor the optimize pragma passes on, so AdamW's 8-wide loop is written with
// AVX intrinsics (no FMA: the same roundings as the scalar tail).
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx"))) static long pc_adamw_avx(float *w, const float *g, float *m, float *v, long n,
	float decay_mul, float b1c, float b2, float b2c, float step_size, float bc2, float eps) {
	__m256 dm = _mm256_set1_ps(decay_mul), c1 = _mm256_set1_ps(b1c), c2 = _mm256_set1_ps(b2),
		cc2 = _mm256_set1_ps(b2c), st = _mm256_set1_ps(step_size), bc = _mm256_set1_ps(bc2), ep = _mm256_set1_ps(eps);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 wi = _mm256_mul_ps(_mm256_loadu_ps(w + i), dm), gi = _mm256_loadu_ps(g + i);
		__m256 m0 = _mm256_loadu_ps(m + i);
		__m256 mi = _mm256_add_ps(m0, _mm256_mul_ps(c1, _mm256_sub_ps(gi, m0)));
		__m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), c2), _mm256_mul_ps(_mm256_mul_ps(cc2, gi), gi));
		_mm256_storeu_ps(m + i, mi);
		_mm256_storeu_ps(v + i, vi);
		__m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc), ep);
		_mm256_storeu_ps(w + i, _mm256_sub_ps(wi, _mm256_mul_ps(st, _mm256_div_ps(mi, den))));
	}
	return i;
}
#endif

static void pc_adamw(float *w, const float *g, float *m, float *v, long n, float decay_mul, float b1c, float b2,
	float b2c, float step_size, float bc2, float eps) {
	long i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx")) i = pc_adamw_avx(w, g, m, v, n, decay_mul, b1c, b2, b2c, step_size, bc2, eps);
#endif
	for (; i < n; i++) {
		float wi = w[i] * decay_mul, gi = g[i];
		float mi = m[i] + b1c * (gi - m[i]);
		float vi = v[i] * b2 + b2c * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] = wi - step_size * (mi / (sqrtf(vi) / bc2 + eps));
	}
}

PC_VEC static double pc_sum_squares(const float *x, long n) {
	double s = 0;
	#pragma omp simd reduction(+:s)
	for (long i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
	return s;
}
*/
import "C"

import "unsafe"

// vecImpl names the vector kernels' implementation for reports.
const vecImpl = "c"

func fp(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func ip(s []int32) *C.int32_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(&s[0]))
}

func attnSoftmax(s []float32, t, r0, r1 int, start []int32, lse []float32, save bool) {
	if r1 <= r0 {
		return
	}
	C.pc_attn_softmax(fp(s), C.int(t), C.int(r0), C.int(r1), ip(start), fp(lse), cbool(save))
}

func attnSoftmaxGrad(dp, p []float32, t int, dO []float32, d int, o []float32, ldo, r0, r1 int, start []int32) {
	if r1 <= r0 {
		return
	}
	C.pc_attn_softmax_grad(fp(dp), fp(p), C.int(t), fp(dO), C.int(d), fp(o), C.int(ldo), C.int(r0), C.int(r1), ip(start))
}

func xentRows(z []float32, v int, targets []int32, loss []float64, scale float32, grad bool) {
	if len(targets) == 0 {
		return
	}
	C.pc_xent_rows(fp(z), C.int(v), C.int(len(targets)), ip(targets), (*C.double)(unsafe.Pointer(&loss[0])), C.float(scale), cbool(grad))
}

func swiglu(out, sig, gate, up []float32) {
	if len(out) == 0 {
		return
	}
	C.pc_swiglu(fp(out), fp(sig), fp(gate), fp(up), C.long(len(out)))
}

func swigluGrad(dgate, dup, dout, gate, up, sig []float32) {
	if len(dout) == 0 {
		return
	}
	C.pc_swiglu_grad(fp(dgate), fp(dup), fp(dout), fp(gate), fp(up), fp(sig), C.long(len(dout)))
}

func rmsNorm(out, rstd, x, w []float32, c, r0, r1 int, eps float64) {
	if r1 <= r0 {
		return
	}
	C.pc_rmsnorm(fp(out), fp(rstd), fp(x), fp(w), C.int(c), C.int(r0), C.int(r1), C.double(eps))
}

func rmsNormGradX(dx, dout, x, w, rstd []float32, c, r0, r1 int) {
	if r1 <= r0 {
		return
	}
	C.pc_rmsnorm_grad_x(fp(dx), fp(dout), fp(x), fp(w), fp(rstd), C.int(c), C.int(r0), C.int(r1))
}

func rmsNormGradW(dw, dout, x, rstd []float32, n, c, c0, c1 int) {
	if n == 0 || c1 <= c0 {
		return
	}
	C.pc_rmsnorm_grad_w(fp(dw), fp(dout), fp(x), fp(rstd), C.int(n), C.int(c), C.int(c0), C.int(c1))
}

func rope(x []float32, pos []int32, heads, d int, cos, sin []float32, sign float32, r0, r1 int) {
	if r1 <= r0 {
		return
	}
	C.pc_rope(fp(x), ip(pos), C.int(heads), C.int(d), fp(cos), fp(sin), C.float(sign), C.int(r0), C.int(r1))
}

func add(out, a, b []float32) {
	if len(out) == 0 {
		return
	}
	C.pc_add(fp(out), fp(a), fp(b), C.long(len(out)))
}

func adamW(w, g, m, v []float32, p AdamWStep) {
	if len(w) == 0 {
		return
	}
	C.pc_adamw(fp(w), fp(g), fp(m), fp(v), C.long(len(w)), C.float(p.DecayMul), C.float(p.B1c), C.float(p.B2),
		C.float(p.B2c), C.float(p.StepSize), C.float(p.Bc2), C.float(p.Eps))
}

func sumSquares(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	return float64(C.pc_sum_squares(fp(x), C.long(len(x))))
}
