package kernels

import (
	"fmt"
	"math"
)

// Row-range vector kernels of the CPU training step: the element-wise and
// row-wise passes that sit between the GEMMs (softmax, cross-entropy rows,
// SwiGLU, RMSNorm, RoPE). With cgo they run as C compiled with -O3 and
// OpenMP SIMD reductions, cloned for AVX2+FMA and the baseline ISA and
// picked at load time; without cgo the reference Go versions in vec_go.go
// run. Callers split work by rows (or element ranges) across goroutines, so
// each call touches only its own range; a call never allocates.
//
// Every kernel accumulates sums in float64, as the Go versions do, so the two
// agree to float32 rounding (vec_test.go checks it) and row reductions do
// not lose precision over long rows (an 8192-token vocabulary, say).
//
// Bad arguments panic before any pointer reaches C: every dimension and row
// range is checked against the slices, so that no argument that passes can
// make the C read or write out of range.

// AttnSoftmax turns rows [r0, r1) of the score matrix s (rows x t, ld t),
// whose row r is query i = r % t, into causal probabilities: only columns
// [start[i], i] are kept, the rest become 0. With save it normalises each
// row and writes lse[r], the row's log-sum-exp; without it it recomputes the
// probabilities from lse[r] (the backward pass).
func AttnSoftmax(s []float32, t, r0, r1 int, start []int32, lse []float32, save bool) {
	checkRange("AttnSoftmax", r0, r1)
	checkDims("AttnSoftmax", t)
	checkRows("AttnSoftmax", s, t, r1)
	if r1 > r0 {
		if len(lse) < r1 {
			panic(fmt.Sprintf("kernels.AttnSoftmax: %d lse values for rows up to %d", len(lse), r1))
		}
		checkStarts("AttnSoftmax", start, t)
	}
	attnSoftmax(s, t, r0, r1, start, lse, save)
}

// AttnSoftmaxGrad computes the softmax backward of rows [r0, r1):
// dp[r, j] = p[r, j] * (dp[r, j] - dot(dO[r], O[r])) for j in [start[i], i]
// and 0 elsewhere. dO is (rows, d) contiguous; the output row O[r] of row
// r = h*t + i is o[i*ldo + h*d : +d] (the head's columns of the
// (T, H*D) attention output).
func AttnSoftmaxGrad(dp, p []float32, t int, dO []float32, d int, o []float32, ldo, r0, r1 int, start []int32) {
	checkRange("AttnSoftmaxGrad", r0, r1)
	checkDims("AttnSoftmaxGrad", t, d, ldo)
	checkRows("AttnSoftmaxGrad", dp, t, r1)
	checkRows("AttnSoftmaxGrad", p, t, r1)
	checkRows("AttnSoftmaxGrad", dO, d, r1)
	if r1 > r0 {
		checkStarts("AttnSoftmaxGrad", start, t)
		// The furthest O row read: the last query of the last head, or of
		// an earlier row when the range stays inside one head.
		hMax, iMax := (r1-1)/t, t-1
		if r0/t == hMax {
			iMax = (r1 - 1) % t
		}
		if need := iMax*ldo + hMax*d + d; len(o) < need {
			panic(fmt.Sprintf("kernels.AttnSoftmaxGrad: %d output values, rows %d..%d need %d", len(o), r0, r1, need))
		}
	}
	attnSoftmaxGrad(dp, p, t, dO, d, o, ldo, r0, r1, start)
}

// XentRows turns each row i of the logits z (n x v) with target targets[i]
// into its cross-entropy: loss[i] = logsumexp(z_i) - z_i[t]. With grad the
// row is overwritten by scale * (softmax(z_i) - onehot(t)), the gradient of
// scale * loss. A row whose target is negative (ignored) gets loss 0 and,
// with grad, a zero row. Targets must be < v.
func XentRows(z []float32, v int, targets []int32, loss []float64, scale float32, grad bool) {
	n := len(targets)
	checkDims("XentRows", v, n)
	checkRows("XentRows", z, v, n)
	if len(loss) < n {
		panic("kernels.XentRows: loss too short")
	}
	for i, t := range targets {
		if int(t) >= v {
			panic(fmt.Sprintf("kernels.XentRows: target %d at row %d outside the vocabulary of %d", t, i, v))
		}
	}
	xentRows(z, v, targets, loss, scale, grad)
}

// SwiGLU computes out = silu(gate) * up element-wise over the common length,
// and sig = sigmoid(gate) when sig is not nil.
func SwiGLU(out, sig, gate, up []float32) {
	n := len(out)
	if len(gate) != n || len(up) != n || (sig != nil && len(sig) != n) {
		panic("kernels.SwiGLU: length mismatch")
	}
	swiglu(out, sig, gate, up)
}

// SwiGLUGrad overwrites dgate and dup with the gradients of SwiGLU given
// dout; sig is SwiGLU's sigmoid(gate), or nil to recompute it.
func SwiGLUGrad(dgate, dup, dout, gate, up, sig []float32) {
	n := len(dout)
	if len(dgate) != n || len(dup) != n || len(gate) != n || len(up) != n || (sig != nil && len(sig) != n) {
		panic("kernels.SwiGLUGrad: length mismatch")
	}
	swigluGrad(dgate, dup, dout, gate, up, sig)
}

// RMSNorm normalises rows [r0, r1) of x (rows x c): out = x * rstd * w with
// rstd[r] = 1/sqrt(mean(x_r^2) + eps) saved for the backward pass.
func RMSNorm(out, rstd, x, w []float32, c, r0, r1 int, eps float64) {
	checkRange("RMSNorm", r0, r1)
	checkDims("RMSNorm", c)
	checkRows("RMSNorm", x, c, r1)
	checkRows("RMSNorm", out, c, r1)
	if len(w) < c || len(rstd) < r1 {
		panic("kernels.RMSNorm: w or rstd too short")
	}
	rmsNorm(out, rstd, x, w, c, r0, r1, eps)
}

// RMSNormGradX accumulates into rows [r0, r1) of dx the input gradient of
// RMSNorm given dout, the input x and the saved rstd.
func RMSNormGradX(dx, dout, x, w, rstd []float32, c, r0, r1 int) {
	checkRange("RMSNormGradX", r0, r1)
	checkDims("RMSNormGradX", c)
	checkRows("RMSNormGradX", dx, c, r1)
	checkRows("RMSNormGradX", dout, c, r1)
	checkRows("RMSNormGradX", x, c, r1)
	if len(w) < c || len(rstd) < r1 {
		panic("kernels.RMSNormGradX: w or rstd too short")
	}
	rmsNormGradX(dx, dout, x, w, rstd, c, r0, r1)
}

// RMSNormGradW accumulates into dw[c0:c1] the weight gradient of RMSNorm
// over all n rows: dw[j] += sum_r dout[r, j] * x[r, j] * rstd[r]. Splitting
// by columns keeps the row order of the sum fixed.
func RMSNormGradW(dw, dout, x, rstd []float32, n, c, c0, c1 int) {
	checkDims("RMSNormGradW", n, c)
	checkRange("RMSNormGradW", c0, c1)
	checkRows("RMSNormGradW", dout, c, n)
	checkRows("RMSNormGradW", x, c, n)
	if len(dw) < c1 || len(rstd) < n || c1 > c {
		panic("kernels.RMSNormGradW: dw, rstd or column range out of bounds")
	}
	rmsNormGradW(dw, dout, x, rstd, n, c, c0, c1)
}

// RoPE rotates rows [r0, r1) of x (rows x heads*d) in place by the angles of
// pos[r] (rotate-half convention), with cos and sin tables (P, d/2); sign -1
// rotates backwards (the gradient of the forward rotation).
func RoPE(x []float32, pos []int32, heads, d int, cos, sin []float32, sign float32, r0, r1 int) {
	checkRange("RoPE", r0, r1)
	checkDims("RoPE", heads, d, heads*d)
	checkRows("RoPE", x, heads*d, r1)
	half := d / 2
	for r := r0; r < r1; r++ {
		if p := int(pos[r]); p < 0 || (p+1)*half > len(cos) || (p+1)*half > len(sin) {
			panic(fmt.Sprintf("kernels.RoPE: position %d at row %d outside the table", pos[r], r))
		}
	}
	rope(x, pos, heads, d, cos, sin, sign, r0, r1)
}

// Add sets out = a + b element-wise (out may alias a or b).
func Add(out, a, b []float32) {
	if len(a) != len(out) || len(b) != len(out) {
		panic("kernels.Add: length mismatch")
	}
	add(out, a, b)
}

// AdamWStep is one AdamW update of w with gradient g and moments m, v (all
// the same length), in float32 as torch.optim.AdamW on float32 parameters:
//
//	w *= decayMul                 (decoupled weight decay, 1 for none)
//	m += b1c * (g - m)            (b1c = 1 - beta1)
//	v  = b2*v + b2c*g*g           (b2c = 1 - beta2)
//	w -= stepSize * m / (sqrt(v)/bc2 + eps)
//
// with stepSize = lr / (1 - beta1^t) and bc2 = sqrt(1 - beta2^t).
type AdamWStep struct {
	DecayMul, B1c, B2, B2c, StepSize, Bc2, Eps float32
}

// AdamW applies p to w, g, m and v.
func AdamW(w, g, m, v []float32, p AdamWStep) {
	if len(g) != len(w) || len(m) != len(w) || len(v) != len(w) {
		panic("kernels.AdamW: length mismatch")
	}
	adamW(w, g, m, v, p)
}

// SumSquares returns the sum of x[i]^2, accumulated in float64.
func SumSquares(x []float32) float64 { return sumSquares(x) }

// checkRows panics unless s holds at least rows rows of width cols
// (dimensions already checked non-negative).
func checkRows(op string, s []float32, cols, rows int) {
	if rows > 0 && cols > 0 && rows > len(s)/cols {
		panic(fmt.Sprintf("kernels.%s: %d values, want %d rows of %d", op, len(s), rows, cols))
	}
}

// checkRange panics unless 0 <= lo <= hi and hi fits the C int.
func checkRange(op string, lo, hi int) {
	if lo < 0 || lo > hi || hi > math.MaxInt32 {
		panic(fmt.Sprintf("kernels.%s: range [%d, %d)", op, lo, hi))
	}
}

// checkDims panics unless every dimension is in [0, MaxInt32] (the C
// kernels take them as int); t of the attention kernels must also be > 0,
// which checkStarts enforces.
func checkDims(op string, dims ...int) {
	for _, d := range dims {
		if d < 0 || d > math.MaxInt32 {
			panic(fmt.Sprintf("kernels.%s: dimension %d outside [0, 2^31)", op, d))
		}
	}
}

// checkStarts panics unless t > 0 and start holds, for every query i < t,
// a first key in [0, i+1] (i+1: an empty window).
func checkStarts(op string, start []int32, t int) {
	if t <= 0 || len(start) < t {
		panic(fmt.Sprintf("kernels.%s: %d segment starts for t = %d", op, len(start), t))
	}
	for i, j0 := range start[:t] {
		if j0 < 0 || int(j0) > i+1 {
			panic(fmt.Sprintf("kernels.%s: start[%d] = %d outside [0, %d]", op, i, j0, i+1))
		}
	}
}
