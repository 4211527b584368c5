package ptxmath

import (
	"math"
	"math/bits"
)

// binFormat describes a binary floating-point format narrower than float64.
type binFormat struct {
	prec      int     // significand bits including the hidden bit
	emin      int     // exponent of the smallest normal number
	maxFinite float64 // largest finite value
}

var (
	fmtF32  = binFormat{24, -126, math.MaxFloat32}
	fmtBF16 = binFormat{8, -126, 0x1.FEp127}
	fmtF16  = binFormat{11, -14, 65504}
)

// round rounds x (exactly representable in float64) to the format in mode r,
// with gradual underflow and the IEEE overflow rule (±Inf, or ±maxFinite
// where the mode rounds toward zero). NaN and Inf pass through.
func (f binFormat) round(x float64, r Rounding) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	ax := math.Abs(x)
	_, e := math.Frexp(ax) // ax = m × 2^e, 0.5 ≤ m < 1: leading bit is 2^(e-1)
	lsb := max(e-1, f.emin) - (f.prec - 1)
	scaled := math.Ldexp(ax, -lsb) // exact: a power-of-two scaling within range
	n := math.Floor(scaled)
	frac := scaled - n
	up := false
	switch r {
	case RN:
		up = frac > 0.5 || frac == 0.5 && math.Mod(n, 2) == 1
	case RM:
		up = frac > 0 && x < 0
	case RP:
		up = frac > 0 && x > 0
	}
	if up {
		n++
	}
	v := math.Ldexp(n, lsb)
	if v > f.maxFinite {
		toInf := r == RN || r == RP && x > 0 || r == RM && x < 0
		v = f.maxFinite
		if toInf {
			v = math.Inf(1)
		}
	}
	return math.Copysign(v, x)
}

// CvtF64F32 implements cvt{.ftz}.f64.f32 d, a: exact widening (.ftz flushes
// a subnormal input first). NaN becomes the canonical fp64 NaN.
func CvtF64F32(a float32, ftz bool) float64 {
	if ftz {
		a = FlushF32(a)
	}
	return canon64(float64(a))
}

// CvtF32F64 implements cvt.rnd{.ftz}{.sat}.f32.f64 d, a: a rounded once to
// fp32 in m.Rnd (a rounding modifier is mandatory for this narrowing form);
// .ftz flushes a subnormal fp32 result, .sat clamps to [0, 1].
func CvtF32F64(a float64, m Mode) float32 {
	return finish32(roundF32(a, m.Rnd), m)
}

// CvtF32F32 implements cvt{.ftz}{.sat}.f32.f32 d, a without an integer
// rounding modifier: the value is unchanged except for .ftz and .sat
// (cvt.sat.f32.f32 is how NVRTC emits __saturatef: NaN → +0, clamp to
// [0, 1]).
func CvtF32F32(a float32, m Mode) float32 {
	return finish32(in32(a, m), m)
}

// RoundIntF32 implements cvt.rni/.rzi/.rmi/.rpi{.ftz}{.sat}.f32.f32 d, a:
// round to an integral value in fp32 (the result keeps a's sign, so -0.3
// rounds to -0.0 under .rni).
func RoundIntF32(a float32, r Rounding, m Mode) float32 {
	a = in32(a, m)
	return finish32(float32(roundInt(float64(a), r)), m)
}

// RoundIntF64 implements cvt.rni/.rzi/.rmi/.rpi.f64.f64 d, a.
func RoundIntF64(a float64, r Rounding) float64 {
	return canon64(roundInt(a, r))
}

func roundInt(x float64, r Rounding) float64 {
	var v float64
	switch r {
	case RN:
		v = math.RoundToEven(x)
	case RZ:
		v = math.Trunc(x)
	case RM:
		v = math.Floor(x)
	default:
		v = math.Ceil(x)
	}
	return math.Copysign(v, x) // keep the sign of zero results
}

// CvtFToS implements cvt.rni/.rzi/.rmi/.rpi{.ftz}{.sat}.sN.f32/.f64 d, a for a
// signed destination of width bits (8, 16, 32, 64), returning the value
// sign-extended to int64. fp32 sources are passed as their exact float64
// value with src64 false; .ftz is the caller's FlushF32 on the input. Per
// the ISA, float-to-integer conversions always saturate to the destination
// range (.sat is redundant), and NaN converts to 0 when the source is .f32
// and the destination narrower than 64 bits, otherwise to 1 << (bits-1)
// (MinInt for signed destinations).
func CvtFToS(a float64, src64 bool, r Rounding, bits uint) int64 {
	minInt := int64(-1) << (bits - 1)
	if math.IsNaN(a) {
		if src64 || bits == 64 {
			return minInt
		}
		return 0
	}
	v := roundInt(a, r)
	lim := math.Ldexp(1, int(bits)-1) // 2^(bits-1): exclusive upper bound
	switch {
	case v <= -lim:
		return minInt
	case v >= lim:
		return ^minInt
	}
	return int64(v)
}

// CvtFToU implements cvt.rni/.rzi/.rmi/.rpi{.ftz}{.sat}.uN.f32/.f64 d, a for
// an unsigned destination of width bits: saturation to [0, 2^bits-1] always;
// NaN → 0 for an .f32 source and a destination narrower than 64 bits,
// otherwise 1 << (bits-1).
func CvtFToU(a float64, src64 bool, r Rounding, bits uint) uint64 {
	if math.IsNaN(a) {
		if src64 || bits == 64 {
			return 1 << (bits - 1)
		}
		return 0
	}
	v := roundInt(a, r)
	switch {
	case v <= 0:
		return 0
	case v >= math.Ldexp(1, int(bits)):
		return mask(bits)
	}
	return uint64(v)
}

// CvtSToF32 implements cvt.rnd.f32.sN d, a (the source sign-extended to
// int64): the exactly rounded fp32 of the integer.
func CvtSToF32(a int64, r Rounding) float32 {
	mag := uint64(a)
	neg := a < 0
	if neg {
		mag = -mag
	}
	return float32(intToFloat(mag, neg, 24, r))
}

// CvtUToF32 implements cvt.rnd.f32.uN d, a: the exactly rounded fp32.
func CvtUToF32(a uint64, r Rounding) float32 { return float32(intToFloat(a, false, 24, r)) }

// CvtSToF64 implements cvt.rnd.f64.sN d, a: the exactly rounded fp64.
func CvtSToF64(a int64, r Rounding) float64 {
	mag := uint64(a)
	neg := a < 0
	if neg {
		mag = -mag
	}
	return intToFloat(mag, neg, 53, r)
}

// CvtUToF64 implements cvt.rnd.f64.uN d, a: the exactly rounded fp64.
func CvtUToF64(a uint64, r Rounding) float64 { return intToFloat(a, false, 53, r) }

// intToFloat rounds ±mag to prec significant bits in mode r; the result is
// exactly representable in float64 (and in fp32 when prec is 24).
func intToFloat(mag uint64, neg bool, prec int, r Rounding) float64 {
	n := bits.Len64(mag)
	if n <= prec {
		v := float64(mag)
		if neg {
			v = -v
		}
		return v
	}
	shift := uint(n - prec)
	q := mag >> shift
	rem := mag & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	up := false
	switch r {
	case RN:
		up = rem > half || rem == half && q&1 == 1
	case RM:
		up = rem != 0 && neg
	case RP:
		up = rem != 0 && !neg
	}
	if up {
		q++
	}
	v := math.Ldexp(float64(q), int(shift))
	if neg {
		v = -v
	}
	return v
}

// CvtInt implements the integer-to-integer forms of cvt{.sat}.dType.sType d,
// a. x holds the source in its low srcBits; the result is the destination's
// dstBits-wide pattern, zero-extended to 64 bits. Widening sign- or
// zero-extends by the source type; narrowing keeps the low bits, or with
// .sat clamps the source value to the destination range first.
func CvtInt(x uint64, srcBits uint, srcSigned bool, dstBits uint, dstSigned, sat bool) uint64 {
	mask := uint64(math.MaxUint64) >> (64 - dstBits)
	if !sat {
		if srcSigned {
			return uint64(SignExtend(x, srcBits)) & mask
		}
		return ZeroExtend(x, srcBits) & mask
	}
	var lo, hi int64 // destination range; hi for u64 handled separately
	if dstSigned {
		lo, hi = int64(-1)<<(dstBits-1), int64(uint64(1)<<(dstBits-1)-1)
	} else if dstBits < 64 {
		lo, hi = 0, int64(uint64(1)<<dstBits-1)
	}
	if srcSigned {
		v := SignExtend(x, srcBits)
		if !dstSigned && dstBits == 64 {
			return uint64(max(v, 0))
		}
		return uint64(min(max(v, lo), hi)) & mask
	}
	v := ZeroExtend(x, srcBits)
	if !dstSigned && dstBits == 64 {
		return v
	}
	if v > uint64(hi) {
		return uint64(hi) & mask
	}
	return v & mask
}

// SignExtend interprets the low n bits of x as a two's-complement integer.
func SignExtend(x uint64, n uint) int64 {
	s := 64 - n
	return int64(x<<s) >> s
}

// ZeroExtend keeps the low n bits of x.
func ZeroExtend(x uint64, n uint) uint64 {
	return x & (uint64(math.MaxUint64) >> (64 - n))
}

// quietNaNBF16 narrows an fp32 NaN to bf16, whose encoding is the
// fp32 encoding's top 16 bits: sign and top payload kept, quiet bit
// set, so a NaN can never round to Inf.
func quietNaNBF16(b uint32) uint16 { return uint16(b>>16) | 0x0040 }

// CvtBF16F32 implements cvt.rnd{.relu}.bf16.f32 d, a (the kernels use .rn):
// round a to bfloat16 in mode r. Round-to-nearest ties go to even
// (0x3F808000 → 0x3F80, 0x3F818000 → 0x3F82); overflow gives ±Inf under .rn;
// a NaN stays a quiet NaN with its sign and top payload bits (hardware may
// return the canonical 0x7FFF instead: compare NaN-ness only). .relu turns
// negative results (including -0) into +0 and NaN into the canonical 0x7FFF.
func CvtBF16F32(a float32, r Rounding, relu bool) uint16 {
	b := math.Float32bits(a)
	if a != a {
		if relu {
			return 0x7FFF
		}
		return quietNaNBF16(b)
	}
	var h uint16
	if r == RN {
		// Adding 0x7FFF plus the lowest kept bit rounds half to even; a
		// carry into the exponent is the correct rounding (up to Inf).
		h = uint16((b + 0x7FFF + (b>>16)&1) >> 16)
	} else {
		h = uint16(math.Float32bits(float32(fmtBF16.round(float64(a), r))) >> 16)
	}
	if relu && h&0x8000 != 0 {
		return 0
	}
	return h
}

// CvtBF16x2F32 implements cvt.rnd{.relu}.bf16x2.f32 d, a, b. Note the ISA's
// operand order: the FIRST source goes to the UPPER half, d = {cvt(a) in bits
// 31..16, cvt(b) in bits 15..0}.
func CvtBF16x2F32(a, b float32, r Rounding, relu bool) uint32 {
	return uint32(CvtBF16F32(a, r, relu))<<16 | uint32(CvtBF16F32(b, r, relu))
}

// BF16ToF32 implements cvt.f32.bf16 d, a (and the shl-by-16 widening the
// kernels use): exact.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// CvtF16F32 implements cvt.rnd{.relu}.f16.f32 d, a: round to IEEE binary16
// in mode r with gradual underflow; overflow gives ±Inf (or ±65504 where the
// mode rounds toward zero). A NaN becomes a quiet NaN keeping its sign and
// top payload bits; with .relu, NaN becomes the canonical 0x7FFF and
// negative results +0.
func CvtF16F32(a float32, r Rounding, relu bool) uint16 {
	b := math.Float32bits(a)
	if a != a {
		if relu {
			return 0x7FFF
		}
		return uint16(b>>16)&0x8000 | 0x7E00 | uint16(b>>13)&0x01FF
	}
	h := encodeF16(fmtF16.round(float64(a), r))
	if relu && h&0x8000 != 0 {
		return 0
	}
	return h
}

// CvtF16x2F32 implements cvt.rnd{.relu}.f16x2.f32 d, a, b: d = {cvt(a) in
// bits 31..16, cvt(b) in bits 15..0}.
func CvtF16x2F32(a, b float32, r Rounding, relu bool) uint32 {
	return uint32(CvtF16F32(a, r, relu))<<16 | uint32(CvtF16F32(b, r, relu))
}

// encodeF16 encodes a value exactly representable in binary16 (or ±Inf).
func encodeF16(v float64) uint16 {
	var sign uint16
	if math.Signbit(v) {
		sign = 0x8000
	}
	av := math.Abs(v)
	switch {
	case math.IsInf(av, 0):
		return sign | 0x7C00
	case av < 0x1p-14: // subnormal or zero: units of 2^-24
		return sign | uint16(math.Ldexp(av, 24))
	}
	m, e := math.Frexp(av) // av = m × 2^e, 0.5 ≤ m < 1
	return sign | uint16(e-1+15)<<10 | uint16(math.Ldexp(m, 11))&0x3FF
}

// F16ToF32 implements cvt.f32.f16 d, a: exact widening, subnormals included;
// a NaN keeps its sign and payload (shifted into the fp32 mantissa).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1F
	man := uint32(h) & 0x3FF
	switch {
	case exp == 0:
		v := float32(math.Ldexp(float64(man), -24)) // exact
		return math.Float32frombits(math.Float32bits(v) | sign)
	case exp == 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}
