package kernels

import "math"

// The reference Go versions of the vector kernels (vec.go documents each).
// They run when cgo is off, and the tests hold the C versions to them.

func attnSoftmaxGo(s []float32, t, r0, r1 int, start []int32, lse []float32, save bool) {
	for r := r0; r < r1; r++ {
		i := r % t
		j0 := int(start[i])
		row := s[r*t : (r+1)*t]
		if save {
			m := float32(math.Inf(-1))
			for j := j0; j <= i; j++ {
				m = max(m, row[j])
			}
			var sum float64
			for j := j0; j <= i; j++ {
				e := Expf(row[j] - m)
				row[j] = e
				sum += float64(e)
			}
			lse[r] = float32(float64(m) + math.Log(sum))
			inv := float32(1 / sum)
			for j := j0; j <= i; j++ {
				row[j] *= inv
			}
		} else {
			l := lse[r]
			for j := j0; j <= i; j++ {
				row[j] = Expf(row[j] - l)
			}
		}
		clear(row[:j0])
		clear(row[i+1:])
	}
}

func attnSoftmaxGradGo(dp, p []float32, t int, dO []float32, d int, o []float32, ldo, r0, r1 int, start []int32) {
	for r := r0; r < r1; r++ {
		h, i := r/t, r%t
		j0 := int(start[i])
		do := dO[r*d : (r+1)*d]
		or := o[i*ldo+h*d : i*ldo+h*d+d]
		var di float64
		for k, v := range do {
			di += float64(v) * float64(or[k])
		}
		pr := p[r*t : (r+1)*t]
		dr := dp[r*t : (r+1)*t]
		for j := j0; j <= i; j++ {
			dr[j] = pr[j] * (dr[j] - float32(di))
		}
		clear(dr[:j0])
		clear(dr[i+1:])
	}
}

func xentRowsGo(z []float32, v int, targets []int32, loss []float64, scale float32, grad bool) {
	for i, t := range targets {
		zr := z[i*v : (i+1)*v]
		if t < 0 {
			loss[i] = 0
			if grad {
				clear(zr)
			}
			continue
		}
		zt, m := zr[t], zr[0]
		for _, x := range zr {
			m = max(m, x)
		}
		// One exp pass: keep e^(z-max) in z, then scale it into the
		// gradient in place.
		var se float64
		for j, x := range zr {
			e := Expf(x - m)
			zr[j] = e
			se += float64(e)
		}
		loss[i] = float64(m) + math.Log(se) - float64(zt)
		if grad {
			k := float32(float64(scale) / se)
			for j := range zr {
				zr[j] *= k
			}
			zr[t] -= scale
		}
	}
}

func swigluGo(out, sig, gate, up []float32) {
	for i, g := range gate {
		s := 1 / (1 + Expf(-g))
		if sig != nil {
			sig[i] = s
		}
		out[i] = g * s * up[i]
	}
}

func swigluGradGo(dgate, dup, dout, gate, up, sig []float32) {
	for i, g := range gate {
		var s float32
		if sig != nil {
			s = sig[i]
		} else {
			s = 1 / (1 + Expf(-g))
		}
		d := dout[i]
		dup[i] = d * g * s
		dgate[i] = d * up[i] * s * (1 + g*(1-s))
	}
}

func rmsNormGo(out, rstd, x, w []float32, c, r0, r1 int, eps float64) {
	for r := r0; r < r1; r++ {
		row := x[r*c : (r+1)*c]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		s := 1 / math.Sqrt(ss/float64(c)+eps)
		rstd[r] = float32(s)
		o := out[r*c : (r+1)*c]
		for j, v := range row {
			o[j] = float32(float64(v) * s * float64(w[j]))
		}
	}
}

func rmsNormGradXGo(dx, dout, x, w, rstd []float32, c, r0, r1 int) {
	for r := r0; r < r1; r++ {
		xr := x[r*c : (r+1)*c]
		gr := dout[r*c : (r+1)*c]
		s := float64(rstd[r])
		// d/dx of x*s*w: s*w*g - x * s^3 * mean(w*g*x).
		var dot float64
		for j, v := range xr {
			dot += float64(gr[j]) * float64(w[j]) * float64(v)
		}
		k := s * s * s * dot / float64(c)
		dr := dx[r*c : (r+1)*c]
		for j, v := range xr {
			dr[j] += float32(s*float64(w[j])*float64(gr[j]) - k*float64(v))
		}
	}
}

func rmsNormGradWGo(dw, dout, x, rstd []float32, n, c, c0, c1 int) {
	const block = 64
	var acc [block]float64
	for b0 := c0; b0 < c1; b0 += block {
		b1 := min(b0+block, c1)
		clear(acc[:])
		for r := 0; r < n; r++ {
			s := float64(rstd[r])
			xr := x[r*c+b0 : r*c+b1]
			gr := dout[r*c+b0 : r*c+b1]
			for j, v := range xr {
				acc[j] += float64(gr[j]) * float64(v) * s
			}
		}
		for j := b0; j < b1; j++ {
			dw[j] += float32(acc[j-b0])
		}
	}
}

func ropeGo(x []float32, pos []int32, heads, d int, cos, sin []float32, sign float32, r0, r1 int) {
	half, width := d/2, heads*d
	for r := r0; r < r1; r++ {
		p := int(pos[r])
		cr := cos[p*half : (p+1)*half]
		sr := sin[p*half : (p+1)*half]
		for h := 0; h < heads; h++ {
			v := x[r*width+h*d : r*width+(h+1)*d]
			for i := 0; i < half; i++ {
				a, b := v[i], v[i+half]
				s := sign * sr[i]
				v[i] = a*cr[i] - b*s
				v[i+half] = b*cr[i] + a*s
			}
		}
	}
}

func addGo(out, a, b []float32) {
	for i := range out {
		out[i] = a[i] + b[i]
	}
}

func adamWGo(w, g, m, v []float32, p AdamWStep) {
	for i := range w {
		wi := w[i] * p.DecayMul
		gi := g[i]
		// The explicit float32 conversions forbid the compiler from fusing a
		// product into an FMA (the Go spec allows fusion otherwise, and arm64
		// or GOAMD64=v3 builds do it), which would break bit-identity with the
		// C kernel and the GPU's all-.rn PTX.
		mi := m[i] + float32(p.B1c*(gi-m[i]))
		vi := float32(v[i]*p.B2) + float32(float32(p.B2c*gi)*gi)
		m[i], v[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi)))/p.Bc2 + p.Eps
		w[i] = wi - float32(p.StepSize*(mi/denom))
	}
}

func sumSquaresGo(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}
