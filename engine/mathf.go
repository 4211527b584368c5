package engine

import "math"

// expf is a float32 exponential accurate to ~2 ulp: range reduction by
// ln 2 (split in a high part exact in float32 and a low correction) and the
// classic degree-6 minimax polynomial for e^r on |r| <= ln2/2 (Cephes
// expf). It is several times faster than math.Exp, which dominated the
// softmax in attention.
func expf(x float32) float32 {
	switch {
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654:
		return 0
	case x != x:
		return x
	}
	// Round x/ln2 to the nearest integer without math.Floor (not inlined).
	fn := x * 1.442695041
	var ni int32
	if fn >= 0 {
		ni = int32(fn + 0.5)
	} else {
		ni = int32(fn - 0.5)
	}
	n := float32(ni)
	r := x - n*0.693359375 - n*-2.12194440e-4
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*r*r + r + 1
	// 2^n for n in [-126, 128): build the exponent bits directly; n == 128
	// only happens at the overflow edge, handled by multiplying twice.
	if ni > 127 {
		return p * 2 * math.Float32frombits(uint32(ni-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(ni+127)<<23)
}
