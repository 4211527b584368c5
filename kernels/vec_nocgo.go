//go:build !cgo

package kernels

// Without cgo the vector kernels are the Go reference versions.

const vecImpl = "go"

func attnSoftmax(s []float32, t, r0, r1 int, start []int32, lse []float32, save bool) {
	attnSoftmaxGo(s, t, r0, r1, start, lse, save)
}

func attnSoftmaxGrad(dp, p []float32, t int, dO []float32, d int, o []float32, ldo, r0, r1 int, start []int32) {
	attnSoftmaxGradGo(dp, p, t, dO, d, o, ldo, r0, r1, start)
}

func xentRows(z []float32, v int, targets []int32, loss []float64, scale float32, grad bool) {
	xentRowsGo(z, v, targets, loss, scale, grad)
}

func swiglu(out, sig, gate, up []float32) { swigluGo(out, sig, gate, up) }
func swigluGrad(dgate, dup, dout, gate, up, sig []float32) {
	swigluGradGo(dgate, dup, dout, gate, up, sig)
}

func rmsNorm(out, rstd, x, w []float32, c, r0, r1 int, eps float64) {
	rmsNormGo(out, rstd, x, w, c, r0, r1, eps)
}

func rmsNormGradX(dx, dout, x, w, rstd []float32, c, r0, r1 int) {
	rmsNormGradXGo(dx, dout, x, w, rstd, c, r0, r1)
}

func rmsNormGradW(dw, dout, x, rstd []float32, n, c, c0, c1 int) {
	rmsNormGradWGo(dw, dout, x, rstd, n, c, c0, c1)
}

func rope(x []float32, pos []int32, heads, d int, cos, sin []float32, sign float32, r0, r1 int) {
	ropeGo(x, pos, heads, d, cos, sin, sign, r0, r1)
}

func add(out, a, b []float32) { addGo(out, a, b) }

func adamW(w, g, m, v []float32, p AdamWStep) { adamWGo(w, g, m, v, p) }

func sumSquares(x []float32) float64 { return sumSquaresGo(x) }
