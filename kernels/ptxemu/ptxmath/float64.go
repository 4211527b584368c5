package ptxmath

import (
	"math"
	"math/big"
)

func canon64(x float64) float64 {
	if math.IsNaN(x) {
		return nan64()
	}
	return x
}

// AddF64 implements add{.rnd}.f64 d, a, b: the exact sum rounded once in r.
// Directed modes use the error-free sum: the sign of the error term says on
// which side of RN(a+b) the exact sum lies.
func AddF64(a, b float64, r Rounding) float64 {
	s, e := twoSum(a, b)
	switch {
	case math.IsNaN(s):
		return nan64()
	case s == 0 && e == 0:
		return zeroSign(math.Signbit(a), math.Signbit(b), r)
	case r == RN:
		return s
	case math.IsInf(s, 0):
		if math.IsInf(a, 0) || math.IsInf(b, 0) {
			return s
		}
		// Finite operands overflowed: the exact sum is beyond ±MaxFloat64.
		if s > 0 {
			return pick64(math.MaxFloat64, s, true, r)
		}
		return pick64(s, -math.MaxFloat64, false, r)
	case e == 0:
		return s
	case e > 0:
		return pick64(s, math.Nextafter(s, math.Inf(1)), s > 0, r)
	}
	return pick64(math.Nextafter(s, math.Inf(-1)), s, s > 0, r)
}

// SubF64 implements sub{.rnd}.f64 d, a, b as a + (-b).
func SubF64(a, b float64, r Rounding) float64 { return AddF64(a, -b, r) }

// MulF64 implements mul{.rnd}.f64 d, a, b. Directed modes compute the exact
// 106-bit product with math/big.
func MulF64(a, b float64, r Rounding) float64 {
	p := float64(a * b)
	if r == RN || math.IsNaN(p) || a == 0 || b == 0 || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return canon64(p) // RN, or exact special cases
	}
	x := new(big.Float).SetPrec(106).SetFloat64(a)
	x.Mul(x, new(big.Float).SetFloat64(b))
	return bigToF64(x, r)
}

// fmaPrec holds any exact a*b+c of fp64 values: the sum spans at most from
// 2^2049 down to 2^-2148.
const fmaPrec = 4300

// FmaF64 implements fma.rnd.f64 d, a, b, c (and mad.rnd.f64): a*b+c with
// unbounded precision, rounded once.
func FmaF64(a, b, c float64, r Rounding) float64 {
	if r == RN {
		return canon64(math.FMA(a, b, c))
	}
	if math.IsNaN(a) || math.IsNaN(b) || math.IsNaN(c) || math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsInf(c, 0) {
		return canon64(math.FMA(a, b, c)) // no rounding involved
	}
	if a == 0 || b == 0 {
		p := math.Copysign(0, a) * math.Copysign(1, b)
		if c == 0 {
			return zeroSign(math.Signbit(p), math.Signbit(c), r)
		}
		return c
	}
	x := new(big.Float).SetPrec(fmaPrec).SetFloat64(a)
	x.Mul(x, new(big.Float).SetFloat64(b))
	x.Add(x, new(big.Float).SetFloat64(c))
	if x.Sign() == 0 {
		return zeroSign(math.Signbit(a) != math.Signbit(b), math.Signbit(c), r)
	}
	return bigToF64(x, r)
}

// DivF64 implements div.rnd.f64 d, a, b: the exactly rounded quotient.
func DivF64(a, b float64, r Rounding) float64 {
	q := a / b
	if r == RN || math.IsNaN(q) || a == 0 || b == 0 || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return canon64(q) // RN, or exact special cases
	}
	x := new(big.Float).SetPrec(128).SetMode(big.ToZero).SetFloat64(a)
	x.Quo(x, new(big.Float).SetFloat64(b))
	return bigToF64(x, r)
}

// RcpF64 implements rcp.rnd.f64 d, a: the exactly rounded 1/a.
func RcpF64(a float64, r Rounding) float64 { return DivF64(1, a, r) }

// SqrtF64 implements sqrt.rnd.f64 d, a. Subnormal and tiny inputs are scaled
// by an even power of two first so the remainder a - s*s stays exact.
func SqrtF64(a float64, r Rounding) float64 {
	if r == RN || a <= 0 || math.IsInf(a, 1) || math.IsNaN(a) {
		if a < 0 {
			return nan64()
		}
		return canon64(math.Sqrt(a))
	}
	scale := 0
	if a < 0x1p-900 {
		a *= 0x1p200 // exact
		scale = -100
	}
	s := math.Sqrt(a)
	e := math.FMA(-s, s, a)
	var res float64
	switch {
	case e == 0:
		res = s
	case e > 0:
		res = pick64(s, math.Nextafter(s, math.Inf(1)), true, r)
	default:
		res = pick64(math.Nextafter(s, math.Inf(-1)), s, true, r)
	}
	return math.Ldexp(res, scale) // exact: results of scaled inputs are ≥ 2^-537
}

// bigToF64 rounds a finite nonzero x to fp64 in mode r with gradual
// underflow. x.Acc() must describe x relative to the true value (Exact when
// x is the exact value, as for products and sums computed with enough
// precision; Below/Above when x was truncated toward zero with ≥ 55 bits).
func bigToF64(x *big.Float, r Rounding) float64 {
	inexact := x.Acc() != big.Exact
	if inexact {
		x = bigToOdd(x)
	}
	f, _ := x.Float64() // nearest even, gradual underflow, overflow to ±Inf
	if r == RN {
		return f
	}
	c := x.Cmp(new(big.Float).SetFloat64(f))
	if c == 0 && !inexact {
		return f
	}
	lo, hi := f, f
	if c > 0 {
		hi = math.Nextafter(f, math.Inf(1))
	} else {
		lo = math.Nextafter(f, math.Inf(-1))
	}
	return pick64(lo, hi, x.Sign() > 0, r)
}

// bigToOdd sets the last bit of a value truncated toward zero at its
// precision, so that it is no longer equal to any number of fewer bits —
// the round-to-odd of the true value, which every coarser rounding then
// rounds correctly.
func bigToOdd(x *big.Float) *big.Float {
	prec := int(x.Prec())
	m := new(big.Float)
	e := x.MantExp(m) // x = m × 2^e, 0.5 ≤ |m| < 1
	m.SetMantExp(m, prec)
	i, _ := m.Int(nil)
	if i.Bit(0) == 0 {
		if i.Sign() > 0 {
			i.Add(i, big.NewInt(1))
		} else {
			i.Sub(i, big.NewInt(1))
		}
	}
	out := new(big.Float).SetInt(i)
	return out.SetMantExp(out, e-prec)
}

// MinF64 implements min.f64 with the NaN and signed-zero rules of MinF32.
func MinF64(a, b float64) float64 { return minmax64(a, b, true) }

// MaxF64 implements max.f64 with the NaN and signed-zero rules of MaxF32.
func MaxF64(a, b float64) float64 { return minmax64(a, b, false) }

func minmax64(a, b float64, isMin bool) float64 {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return nan64()
	case math.IsNaN(a):
		return b
	case math.IsNaN(b):
		return a
	}
	if a == b {
		if math.Signbit(a) == isMin {
			return a
		}
		return b
	}
	if (a < b) == isMin {
		return a
	}
	return b
}

// AbsF64 implements abs.f64: clears the sign bit.
func AbsF64(a float64) float64 { return math.Abs(a) }

// NegF64 implements neg.f64: flips the sign bit.
func NegF64(a float64) float64 { return math.Float64frombits(math.Float64bits(a) ^ 1<<63) }

// CopysignF64 implements copysign.f64 d, a, b: b's magnitude with a's sign.
func CopysignF64(a, b float64) float64 { return math.Copysign(b, a) }
