package ptxmath

import "math"

// approx32 is the shared shape of the .approx.f32 functions: .ftz on the
// input, f computed in float64 and rounded to nearest fp32, .ftz on the
// result, canonical NaN.
func approx32(a float32, ftz bool, f func(float64) float64) float32 {
	m := Mode{FTZ: ftz}
	a = in32(a, m)
	return finish32(float32(f(float64(a))), m)
}

// Ex2ApproxF32 implements ex2.approx{.ftz}.f32 d, a: 2^a. Corner cases per
// the ISA: -Inf → +0, ±0 → +1, +Inf → +Inf, NaN → NaN. The emulator returns
// the correctly rounded value; the ISA allows the hardware a maximum error of
// 2 ulp from the correctly rounded result over the full input range.
func Ex2ApproxF32(a float32, ftz bool) float32 { return approx32(a, ftz, math.Exp2) }

// Lg2ApproxF32 implements lg2.approx{.ftz}.f32 d, a: log2(a). Corner cases:
// -Inf and negative values → NaN, ±0 → -Inf, +Inf → +Inf. The ISA states a
// maximum absolute error of 2^-22 for inputs in (0.5, 2) and a maximum
// relative error of 2^-22 elsewhere; the emulator returns the correctly
// rounded value.
func Lg2ApproxF32(a float32, ftz bool) float32 { return approx32(a, ftz, math.Log2) }

// RcpApproxF32 implements rcp.approx{.ftz}.f32 d, a: 1/a. The ISA states a
// maximum error of 1 ulp; the emulator returns the correctly rounded value.
func RcpApproxF32(a float32, ftz bool) float32 { return RcpF32(a, Mode{FTZ: ftz}) }

// RsqrtApproxF32 implements rsqrt.approx{.ftz}.f32 d, a: 1/sqrt(a). Corner
// cases: negative values and -Inf → NaN, -0 → -Inf, +0 → +Inf, +Inf → +0.
// The ISA states a maximum relative error of 2^-22.9 over the positive finite
// range; the emulator returns the correctly rounded value.
func RsqrtApproxF32(a float32, ftz bool) float32 {
	return approx32(a, ftz, func(x float64) float64 {
		if x == 0 {
			return math.Copysign(math.Inf(1), x)
		}
		return 1 / math.Sqrt(x)
	})
}

// SqrtApproxF32 implements sqrt.approx{.ftz}.f32 d, a. The ISA states a
// maximum relative error of 2^-23 for the hardware; the emulator returns the
// correctly rounded square root (as sqrt.rn).
func SqrtApproxF32(a float32, ftz bool) float32 { return SqrtF32(a, Mode{FTZ: ftz}) }

// DivApproxF32 implements div.approx{.ftz}.f32 d, a, b. The hardware computes
// a * (1/b) with a maximum error of 2 ulp for |b| in [2^-126, 2^126]; the
// emulator returns the correctly rounded a/b there. For 2^126 < |b| < 2^128
// the ISA defines the result: NaN if a is infinite, otherwise a zero with
// the sign of a/b — the emulator returns exactly that.
func DivApproxF32(a, b float32, ftz bool) float32 {
	if ab := math.Abs(float64(b)); ab > 0x1p126 && !math.IsInf(ab, 0) {
		if math.IsInf(float64(a), 0) || isNaN32(a) {
			return nan32()
		}
		if math.Signbit(float64(a)) != math.Signbit(float64(b)) {
			return float32(math.Copysign(0, -1))
		}
		return 0
	}
	return DivF32(a, b, Mode{FTZ: ftz})
}

// DivFullF32 implements div.full{.ftz}.f32 d, a, b: the hardware's maximum
// error is 2 ulp; the emulator returns the correctly rounded a/b.
func DivFullF32(a, b float32, ftz bool) float32 { return DivF32(a, b, Mode{FTZ: ftz}) }

// SinApproxF32 implements sin.approx{.ftz}.f32 d, a (hardware: maximum
// absolute error 2^-20.5 in [-2π, 2π], 2^-14.7 in [-100π, 100π], no bound
// outside); the emulator returns the correctly rounded sin(a). ±Inf → NaN,
// ±0 → ±0.
func SinApproxF32(a float32, ftz bool) float32 { return approx32(a, ftz, math.Sin) }

// CosApproxF32 implements cos.approx{.ftz}.f32 d, a (hardware bound as for
// sin.approx); the emulator returns the correctly rounded cos(a). ±Inf →
// NaN, ±0 → +1.
func CosApproxF32(a float32, ftz bool) float32 { return approx32(a, ftz, math.Cos) }

// TanhApproxF32 implements tanh.approx.f32 d, a (sm_75+; hardware: maximum
// relative error 2^-11); the emulator returns the correctly rounded
// tanh(a). Subnormal results are not flushed (the instruction has no .ftz).
func TanhApproxF32(a float32) float32 { return approx32(a, false, math.Tanh) }

// rcpApproxF64NaN is the NaN rcp.approx.ftz.f64 returns per the ISA.
const rcpApproxF64NaN uint64 = 0x7FFFFFFF00000000

// RcpApproxFtzF64 implements rcp.approx.ftz.f64 d, a, which the ISA defines
// structurally: only the upper 32 bits of a (sign, exponent and the top 20
// mantissa bits) are used, the reciprocal of that value is placed in the
// upper 32 bits of d and the lower 32 bits of d are zero; subnormal inputs
// and results are flushed to sign-preserving zero and NaN becomes
// 0x7FFFFFFF00000000. The emulator rounds the upper word's reciprocal to
// nearest (20 mantissa bits); the hardware's "gross approximation" of the
// upper word has no stated bound, so only code that refines it (Newton steps,
// as NVRTC emits for fp64 log) gives comparable results.
func RcpApproxFtzF64(a float64) float64 {
	hi := math.Float64frombits(math.Float64bits(a) &^ 0xFFFFFFFF)
	hi = FlushF64(hi)
	if math.IsNaN(hi) {
		return math.Float64frombits(rcpApproxF64NaN)
	}
	return FlushF64(roundTop32(1 / hi))
}

// RsqrtApproxFtzF64 implements rsqrt.approx.ftz.f64 d, a with the same
// upper-word structure as RcpApproxFtzF64: 1/sqrt of a's upper word, rounded
// to nearest in the upper word of d, lower word zero.
func RsqrtApproxFtzF64(a float64) float64 {
	hi := FlushF64(math.Float64frombits(math.Float64bits(a) &^ 0xFFFFFFFF))
	switch {
	case math.IsNaN(hi) || hi < 0:
		return math.Float64frombits(rcpApproxF64NaN)
	case hi == 0:
		return math.Copysign(math.Inf(1), hi)
	}
	return FlushF64(roundTop32(1 / math.Sqrt(hi)))
}

// RsqrtApproxF64 implements rsqrt.approx.f64 d, a (software-emulated on the
// hardware, no stated bound); the emulator returns RN(1/sqrt(a)) from
// float64 arithmetic (two roundings, within 1 ulp).
func RsqrtApproxF64(a float64) float64 {
	switch {
	case math.IsNaN(a) || a < 0:
		return nan64()
	case a == 0:
		return math.Copysign(math.Inf(1), a)
	}
	return 1 / math.Sqrt(a)
}

// roundTop32 rounds x to nearest even keeping only the upper 32 bits of its
// encoding (20 explicit mantissa bits); a carry into the exponent is the
// correct rounding, up to Inf.
func roundTop32(x float64) float64 {
	if math.IsInf(x, 0) || x == 0 {
		return x
	}
	b := math.Float64bits(x)
	low := b & 0xFFFFFFFF
	b &^= 0xFFFFFFFF
	if low > 0x80000000 || low == 0x80000000 && b&(1<<32) != 0 {
		b += 1 << 32
	}
	return math.Float64frombits(b)
}
