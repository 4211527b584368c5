package kernels

import "math"

// Expf is a float32 exponential accurate to ~2 ulp: range reduction by
// ln 2 (split in a high part exact in float32 and a low correction) and the
// classic degree-6 minimax polynomial for e^r on |r| <= ln2/2 (Cephes
// expf). Rounding x/ln2 uses the 1.5*2^23 trick (adding it leaves the
// rounded integer in the low mantissa bits), so there is no float-to-int
// branch. The C kernels (vec_cgo.go) use the same polynomial, vectorised;
// this is the Go version for the reference kernels and the GRPO head.
func Expf(x float32) float32 {
	if x < -87.33654 {
		return 0
	}
	x = min(x, 88.72283)   // larger x overflows to +Inf below
	const magic = 12582912 // 1.5 * 2^23
	t := x*1.442695041 + magic
	n := t - magic
	r := x - n*0.693359375 - n*-2.12194440e-4
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*r*r + r + 1
	// The low mantissa bits of t hold n (two's complement, n in
	// [-126, 128]); n + 127 is the biased exponent of 2^n, and 2^128
	// becomes the Inf pattern, which is the right overflow.
	e := (math.Float32bits(t) - 0x4B400000 + 127) << 23
	return p * math.Float32frombits(e)
}
