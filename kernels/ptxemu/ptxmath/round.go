package ptxmath

import (
	"fmt"
	"math"
	"strings"
)

// Rounding is a PTX rounding modifier. For floating-point results it is
// .rn/.rz/.rm/.rp; for float-to-integer conversions the same four modes are
// spelled .rni/.rzi/.rmi/.rpi and round to an integral value.
type Rounding uint8

const (
	// RN rounds to nearest, ties to even (.rn, .rni). It is the default of
	// add/sub/mul/fma/div/sqrt when no rounding modifier is written.
	RN Rounding = iota
	// RZ rounds toward zero (.rz, .rzi).
	RZ
	// RM rounds toward negative infinity (.rm, .rmi).
	RM
	// RP rounds toward positive infinity (.rp, .rpi).
	RP
)

// String returns the modifier without its dot ("rn", "rz", "rm", "rp").
func (r Rounding) String() string {
	switch r {
	case RN:
		return "rn"
	case RZ:
		return "rz"
	case RM:
		return "rm"
	case RP:
		return "rp"
	}
	return fmt.Sprintf("Rounding(%d)", uint8(r))
}

// ParseRounding accepts a rounding modifier with or without its leading dot,
// in its floating-point (rn) or integer (rni) spelling.
func ParseRounding(s string) (Rounding, error) {
	t := strings.TrimPrefix(s, ".")
	if len(t) == 3 && t[2] == 'i' {
		t = t[:2]
	}
	switch t {
	case "rn":
		return RN, nil
	case "rz":
		return RZ, nil
	case "rm":
		return RM, nil
	case "rp":
		return RP, nil
	}
	return 0, fmt.Errorf("ptxmath: unknown rounding modifier %q", s)
}

// Mode is the modifier set of a floating-point arithmetic instruction:
// rounding, .ftz (flush subnormal inputs and results to sign-preserving zero)
// and .sat (clamp the result to [0.0, 1.0], NaN to +0.0).
type Mode struct {
	Rnd Rounding
	FTZ bool
	Sat bool
}

// CanonicalNaN32 is the NaN NVIDIA GPUs return for fp32 operations with a
// NaN result, whatever the inputs' payloads.
const CanonicalNaN32 uint32 = 0x7FFFFFFF

// CanonicalNaN64 is the NaN this package returns for fp64 operations with a
// NaN result. (The ISA leaves fp64 NaN payloads unspecified; only NaN-ness
// is meaningful.)
const CanonicalNaN64 uint64 = 0x7FFFFFFFFFFFFFFF

func nan32() float32 { return math.Float32frombits(CanonicalNaN32) }
func nan64() float64 { return math.Float64frombits(CanonicalNaN64) }

func isNaN32(x float32) bool { return x != x }

// IsSubnormal32 reports whether x is a nonzero fp32 subnormal.
func IsSubnormal32(x float32) bool {
	b := math.Float32bits(x)
	return b&0x7F800000 == 0 && b&0x007FFFFF != 0
}

// IsSubnormal64 reports whether x is a nonzero fp64 subnormal.
func IsSubnormal64(x float64) bool {
	b := math.Float64bits(x)
	return b&0x7FF0000000000000 == 0 && b&0x000FFFFFFFFFFFFF != 0
}

// FlushF32 implements .ftz on one value: a subnormal becomes a zero of the
// same sign; every other value is returned unchanged.
func FlushF32(x float32) float32 {
	if IsSubnormal32(x) {
		return math.Float32frombits(math.Float32bits(x) & 0x80000000)
	}
	return x
}

// FlushF64 is FlushF32 for fp64 (used by rcp.approx.ftz.f64).
func FlushF64(x float64) float64 {
	if IsSubnormal64(x) {
		return math.Float64frombits(math.Float64bits(x) & (1 << 63))
	}
	return x
}

// SatF32 implements .sat on an fp32 result: clamp to [0.0, 1.0] with NaN
// becoming +0.0 (ISA). A -0.0 result also becomes +0.0: the ISA's interval
// [0.0, 1.0] leaves the sign of a zero result open, and clamping to the
// positive zero is this package's choice.
func SatF32(x float32) float32 {
	switch {
	case isNaN32(x) || x <= 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}

// finish32 applies the result side of .ftz and .sat and canonicalises NaN.
func finish32(x float32, m Mode) float32 {
	if isNaN32(x) {
		x = nan32()
	}
	if m.FTZ {
		x = FlushF32(x)
	}
	if m.Sat {
		x = SatF32(x)
	}
	return x
}

// in32 applies the input side of .ftz.
func in32(x float32, m Mode) float32 {
	if m.FTZ {
		return FlushF32(x)
	}
	return x
}

// twoSum returns s = RN(a+b) and the exact error e with a+b = s+e (Knuth's
// branch-free form; exact whenever s does not overflow).
func twoSum(a, b float64) (s, e float64) {
	s = a + b
	bb := s - a
	e = (a - (s - bb)) + (b - bb)
	return s, e
}

// toOdd turns RN(x) = s with x = s+e into the round-to-odd value of x: if x
// is inexact and s's last significand bit is even, step one ulp toward x.
// A float64 rounded to odd has 29 more bits than fp32, so a second rounding
// to fp32 in any mode gives the correctly rounded fp32 of x. s must be
// finite and nonzero when e is nonzero (true for every caller: an inexact
// sum or quotient of fp32 values is far from zero and from overflow).
func toOdd(s, e float64) float64 {
	b := math.Float64bits(s)
	if e == 0 || b&1 == 1 {
		return s
	}
	// Stepping the encoding by one moves one ulp in magnitude.
	if (e > 0) == (s > 0) {
		b++
	} else {
		b--
	}
	return math.Float64frombits(b)
}

// roundF32 rounds x to fp32 in mode r, with gradual underflow and IEEE
// overflow (to ±Inf, or to ±MaxFloat32 where the mode rounds toward zero).
// x must be exact or rounded to odd (see toOdd).
func roundF32(x float64, r Rounding) float32 {
	f := float32(x) // Go's conversion rounds to nearest even, subnormals included
	if r == RN || x != x || float64(f) == x {
		return f
	}
	lo, hi := f, f
	if float64(f) < x {
		hi = math.Nextafter32(f, float32(math.Inf(1)))
	} else {
		lo = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return pick32(lo, hi, x > 0, r)
}

// pick32 chooses between the two fp32 neighbours lo < exact < hi.
func pick32(lo, hi float32, positive bool, r Rounding) float32 {
	switch r {
	case RM:
		return lo
	case RP:
		return hi
	}
	if positive { // RZ
		return lo
	}
	return hi
}

// pick64 chooses between the two fp64 neighbours lo < exact < hi.
func pick64(lo, hi float64, positive bool, r Rounding) float64 {
	switch r {
	case RM:
		return lo
	case RP:
		return hi
	}
	if positive { // RZ
		return lo
	}
	return hi
}

// zeroSign returns the signed zero of an exact zero sum x+y (IEEE 754 §6.3):
// the common sign when both addends are zeros of one sign, otherwise +0 —
// except under RM, where it is -0.
func zeroSign(xNeg, yNeg bool, r Rounding) float64 {
	if xNeg && yNeg || (xNeg != yNeg && r == RM) {
		return math.Copysign(0, -1)
	}
	return 0
}
