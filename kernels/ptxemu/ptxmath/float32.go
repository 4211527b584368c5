package ptxmath

import "math"

// AddF32 implements add{.rnd}{.ftz}{.sat}.f32 d, a, b: the exact sum a+b
// rounded once in m.Rnd (RN when the instruction has no rounding modifier).
// An exact zero sum is +0 (-0 under .rm, or when both addends are -0).
func AddF32(a, b float32, m Mode) float32 {
	a, b = in32(a, m), in32(b, m)
	if m.Rnd == RN {
		return finish32(a+b, m) // Go's fp32 addition is IEEE round to nearest even
	}
	return finish32(sum32(float64(a), float64(b), m.Rnd), m)
}

// SubF32 implements sub{.rnd}{.ftz}{.sat}.f32 d, a, b as a + (-b).
func SubF32(a, b float32, m Mode) float32 {
	a, b = in32(a, m), in32(b, m)
	if m.Rnd == RN {
		return finish32(a-b, m)
	}
	return finish32(sum32(float64(a), -float64(b), m.Rnd), m)
}

// sum32 rounds the exact sum of two values that are exact in float64 and
// whose sum's error term is representable (fp32 inputs or an exact fp32
// product plus an fp32).
func sum32(a, b float64, r Rounding) float32 {
	s, e := twoSum(a, b)
	if s == 0 && e == 0 && !math.IsNaN(a) && !math.IsNaN(b) {
		return float32(zeroSign(math.Signbit(a), math.Signbit(b), r))
	}
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s) // Inf operands: no rounding involved
	}
	return roundF32(toOdd(s, e), r)
}

// MulF32 implements mul{.rnd}{.ftz}{.sat}.f32 d, a, b. The product of two
// fp32 values is exact in float64, so one rounding gives the exact result.
func MulF32(a, b float32, m Mode) float32 {
	a, b = in32(a, m), in32(b, m)
	if m.Rnd == RN {
		return finish32(a*b, m)
	}
	return finish32(roundF32(float64(a)*float64(b), m.Rnd), m)
}

// FmaF32 implements fma.rnd{.ftz}{.sat}.f32 d, a, b, c (and mad.rnd.f32): a*b+c
// computed with unbounded precision and rounded once.
func FmaF32(a, b, c float32, m Mode) float32 {
	a, b, c = in32(a, m), in32(b, m), in32(c, m)
	p := float64(float64(a) * float64(b)) // exact: 48 significant bits; the conversion forbids fusing into the sum
	return finish32(sum32(p, float64(c), m.Rnd), m)
}

// DivF32 implements div.rnd{.ftz}.f32 d, a, b (IEEE-compliant division, which
// is what div.f32 without .approx/.full means on sm_20+). The float64
// quotient's exact remainder a - q*b tells on which side of q the true
// quotient lies.
func DivF32(a, b float32, m Mode) float32 {
	a, b = in32(a, m), in32(b, m)
	x, y := float64(a), float64(b)
	q := x / y
	if q == 0 || math.IsInf(q, 0) || math.IsNaN(q) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return finish32(float32(q), m) // exact: zero, infinite or NaN
	}
	r := math.FMA(-q, y, x) // exact remainder
	if y < 0 {
		r = -r
	}
	return finish32(roundF32(toOdd(q, r), m.Rnd), m)
}

// RcpF32 implements rcp.rnd{.ftz}.f32 d, a: the exactly rounded 1/a.
func RcpF32(a float32, m Mode) float32 { return DivF32(1, a, m) }

// SqrtF32 implements sqrt.rnd{.ftz}.f32 d, a: the exactly rounded square
// root; sqrt(-0) = -0, sqrt(negative) = NaN.
func SqrtF32(a float32, m Mode) float32 {
	a = in32(a, m)
	x := float64(a)
	if x <= 0 || math.IsInf(x, 1) || math.IsNaN(x) {
		if x < 0 {
			return finish32(nan32(), m)
		}
		return finish32(a, m)
	}
	s := math.Sqrt(x)
	r := math.FMA(-s, s, x) // exact: sign says whether sqrt(x) > s
	return finish32(roundF32(toOdd(s, r), m.Rnd), m)
}

// MinF32 implements min{.ftz}.f32 d, a, b: if exactly one input is NaN the
// other is returned, if both are the result is the canonical NaN; -0.0 is
// treated as less than +0.0.
func MinF32(a, b float32, ftz bool) float32 {
	return minmax32(a, b, ftz, true)
}

// MaxF32 implements max{.ftz}.f32 d, a, b with the NaN rule of MinF32 and
// +0.0 greater than -0.0.
func MaxF32(a, b float32, ftz bool) float32 {
	return minmax32(a, b, ftz, false)
}

func minmax32(a, b float32, ftz, isMin bool) float32 {
	if ftz {
		a, b = FlushF32(a), FlushF32(b)
	}
	switch {
	case isNaN32(a) && isNaN32(b):
		return nan32()
	case isNaN32(a):
		return b
	case isNaN32(b):
		return a
	}
	if a == b { // only ±0 vs ∓0 differ here
		if math.Signbit(float64(a)) == isMin {
			return a
		}
		return b
	}
	if (a < b) == isMin {
		return a
	}
	return b
}

// AbsF32 implements abs{.ftz}.f32: clears the sign bit (NaN stays NaN; the
// ISA leaves NaN payloads of abs/neg unspecified, so bits pass through).
func AbsF32(a float32, ftz bool) float32 {
	if ftz {
		a = FlushF32(a)
	}
	return math.Float32frombits(math.Float32bits(a) &^ 0x80000000)
}

// NegF32 implements neg{.ftz}.f32: flips the sign bit, also of zeros and NaN.
func NegF32(a float32, ftz bool) float32 {
	if ftz {
		a = FlushF32(a)
	}
	return math.Float32frombits(math.Float32bits(a) ^ 0x80000000)
}

// CopysignF32 implements copysign.f32 d, a, b: b's magnitude with a's sign
// (note the ISA's operand order: the sign comes from the first source).
func CopysignF32(a, b float32) float32 {
	return math.Float32frombits(math.Float32bits(b)&^0x80000000 | math.Float32bits(a)&0x80000000)
}

// AtomAddF32 is the arithmetic of atom/red.add.f32 (old value a, operand b):
// rounded to nearest even. Per the ISA the current implementation on global
// memory flushes subnormal inputs and results to sign-preserving zero, while
// on shared memory subnormals are kept; global selects the former.
func AtomAddF32(a, b float32, global bool) float32 { return AddF32(a, b, Mode{FTZ: global}) }
