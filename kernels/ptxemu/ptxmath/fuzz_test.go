package ptxmath

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

var bigModes = map[Rounding]big.RoundingMode{RN: big.ToNearestEven, RZ: big.ToZero, RM: big.ToNegativeInf, RP: big.ToPositiveInf}

// refRound rounds an exact big value to a binary format (prec significand
// bits, smallest normal minNormal, largest finite maxFinite) in mode r,
// independently of the package: normal results use math/big's own rounding;
// results below minNormal are rounded as fixed-point multiples of the
// smallest subnormal; results beyond maxFinite follow the IEEE overflow rule.
// ok is false for a zero x, whose sign the caller checks separately.
func refRound(x *big.Float, r Rounding, prec uint, minNormal, maxFinite float64) (v float64, ok bool) {
	if x.Sign() == 0 {
		return 0, false
	}
	y := new(big.Float).SetMode(bigModes[r]).SetPrec(prec).Set(x)
	v, _ = y.Float64()
	a := math.Abs(v)
	switch {
	case a > maxFinite || math.IsInf(v, 0):
		toInf := r == RN || r == RP && v > 0 || r == RM && v < 0
		if toInf {
			return math.Copysign(math.Inf(1), v), true
		}
		return math.Copysign(maxFinite, v), true
	case a >= minNormal:
		return v, true
	}
	_, e := math.Frexp(minNormal)
	lsb := e - 1 - int(prec-1) // exponent of the smallest subnormal
	s := new(big.Float).SetPrec(x.Prec()+64).SetMantExp(x, -lsb)
	n, _ := s.Int(nil) // toward zero
	frac := new(big.Float).SetPrec(s.Prec()).Sub(s, new(big.Float).SetInt(n))
	half := frac.Abs(frac).Cmp(big.NewFloat(0.5))
	neg := x.Sign() < 0
	up := false // away from zero
	switch r {
	case RN:
		up = half > 0 || half == 0 && n.Bit(0) == 1
	case RM:
		up = neg && frac.Sign() != 0
	case RP:
		up = !neg && frac.Sign() != 0
	}
	if up {
		if neg {
			n.Sub(n, big.NewInt(1))
		} else {
			n.Add(n, big.NewInt(1))
		}
	}
	v = math.Ldexp(float64(n.Int64()), lsb)
	if neg && v == 0 {
		v = math.Copysign(0, -1)
	}
	return v, true
}

func exact(vals ...float64) []*big.Float {
	out := make([]*big.Float, len(vals))
	for i, v := range vals {
		out[i] = new(big.Float).SetPrec(4400).SetFloat64(v)
	}
	return out
}

func finite(vals ...float64) bool {
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

func sameBits32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

func sameBits64(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || a != a && b != b
}

func FuzzF32Arith(f *testing.F) {
	for _, s := range [][3]uint32{
		{0x3F800000, 0x33800000, 0}, {0x3F800800, 0x3F800800, 0x17800000}, {0x7F7FFFFF, 0x73000000, 1},
		{0x00000003, 0x3F000000, 0x80000001}, {0x3F800001, 0xBF800000, 0xB3000000}, {0x40400000, 0x3EAAAAAB, 0xBF800000},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(checkF32Arith)
}

func checkF32Arith(t *testing.T, ab, bb, cb uint32) {
	a, b, c := f32(ab), f32(bb), f32(cb)
	// RN against Go's native fp32 arithmetic (IEEE round to nearest even).
	if got, want := AddF32(a, b, rnd(RN)), a+b; !sameBits32(got, want) {
		t.Fatalf("add.rn(%#x, %#x) = %#x, native %#x", ab, bb, math.Float32bits(got), math.Float32bits(want))
	}
	if got, want := SubF32(a, b, rnd(RN)), a-b; !sameBits32(got, want) {
		t.Fatalf("sub.rn(%#x, %#x) = %#x, native %#x", ab, bb, math.Float32bits(got), math.Float32bits(want))
	}
	if got, want := MulF32(a, b, rnd(RN)), float32(a*b); !sameBits32(got, want) {
		t.Fatalf("mul.rn(%#x, %#x) = %#x, native %#x", ab, bb, math.Float32bits(got), math.Float32bits(want))
	}
	if got, want := DivF32(a, b, rnd(RN)), a/b; !sameBits32(got, want) {
		t.Fatalf("div.rn(%#x, %#x) = %#x, native %#x", ab, bb, math.Float32bits(got), math.Float32bits(want))
	}
	// float64 sqrt then fp32 rounding is correctly rounded (53 ≥ 2·24+2).
	if got, want := SqrtF32(a, rnd(RN)), float32(math.Sqrt(float64(a))); !sameBits32(got, want) {
		t.Fatalf("sqrt.rn(%#x) = %#x, native %#x", ab, math.Float32bits(got), math.Float32bits(want))
	}
	x, y, z := float64(a), float64(b), float64(c)
	if !finite(x, y, z) {
		return
	}
	e := exact(x, y, z)
	sum := new(big.Float).SetPrec(4400).Add(e[0], e[1])
	prod := new(big.Float).SetPrec(4400).Mul(e[0], e[1])
	fma := new(big.Float).SetPrec(4400).Add(prod, e[2])
	for _, r := range allModes {
		for _, c := range []struct {
			name string
			got  float32
			ref  *big.Float
		}{{"add", AddF32(a, b, rnd(r)), sum}, {"mul", MulF32(a, b, rnd(r)), prod}, {"fma", FmaF32(a, b, c, rnd(r)), fma}} {
			if want, ok := refRound(c.ref, r, 24, 0x1p-126, math.MaxFloat32); ok && !sameBits64(float64(c.got), want) {
				t.Fatalf("%s.%v(%#x, %#x, %#x) = %g, want %g", c.name, r, ab, bb, cb, c.got, want)
			}
		}
		if y != 0 {
			q := new(big.Float).SetPrec(200).SetMode(bigModes[r]).Quo(e[0], e[1])
			if want, ok := refRound(q, r, 24, 0x1p-126, math.MaxFloat32); ok && x != 0 && !sameBits64(float64(DivF32(a, b, rnd(r))), want) {
				t.Fatalf("div.%v(%#x, %#x) = %g, want %g", r, ab, bb, DivF32(a, b, rnd(r)), want)
			}
		}
		if x > 0 {
			s := new(big.Float).SetPrec(200).SetMode(bigModes[r]).Sqrt(e[0])
			// big's Sqrt is not guaranteed correctly rounded at 200 bits,
			// but its error is far below what 24-bit rounding sees.
			if want, ok := refRound(s, r, 24, 0x1p-126, math.MaxFloat32); ok && !sameBits64(float64(SqrtF32(a, rnd(r))), want) {
				t.Fatalf("sqrt.%v(%#x) = %g, want %g", r, ab, SqrtF32(a, rnd(r)), want)
			}
		}
	}
	// Directed results bracket the exact value: RM ≤ RN ≤ RP and RZ toward zero.
	lo, hi := AddF32(a, b, rnd(RM)), AddF32(a, b, rnd(RP))
	if n := AddF32(a, b, rnd(RN)); !(lo <= n && n <= hi) {
		t.Fatalf("add(%#x, %#x): rm %g rn %g rp %g not ordered", ab, bb, lo, n, hi)
	}
}

func FuzzF64Arith(f *testing.F) {
	for _, s := range [][3]uint64{
		{0x3FF0000000000000, 0x3CA0000000000000, 0}, {0x1A70000000000000, 0x1A70000000000000, 1},
		{0x7FEFFFFFFFFFFFFF, 0x4000000000000000, 0xFFEFFFFFFFFFFFFF}, {0x3FF0000000000001, 0xBFF0000000000000, 0xBC30000000000000},
		{2, 0x4000000000000000, 0x8000000000000001},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(checkF64Arith)
}

func checkF64Arith(t *testing.T, ab, bb, cb uint64) {
	a, b, c := f64(ab), f64(bb), f64(cb)
	for _, p := range []struct {
		name      string
		got, want float64
	}{
		{"add", AddF64(a, b, RN), a + b}, {"sub", SubF64(a, b, RN), a - b},
		{"mul", MulF64(a, b, RN), float64(a * b)}, {"div", DivF64(a, b, RN), a / b},
		{"fma", FmaF64(a, b, c, RN), math.FMA(a, b, c)}, {"sqrt", SqrtF64(a, RN), math.Sqrt(a)},
	} {
		if !sameBits64(p.got, p.want) {
			t.Fatalf("%s.rn(%#x, %#x, %#x) = %#x, native %#x", p.name, ab, bb, cb, math.Float64bits(p.got), math.Float64bits(p.want))
		}
	}
	if !finite(a, b, c) {
		return
	}
	e := exact(a, b, c)
	sum := new(big.Float).SetPrec(4400).Add(e[0], e[1])
	prod := new(big.Float).SetPrec(4400).Mul(e[0], e[1])
	fma := new(big.Float).SetPrec(4400).Add(prod, e[2])
	for _, r := range allModes {
		for _, c := range []struct {
			name string
			got  float64
			ref  *big.Float
		}{{"add", AddF64(a, b, r), sum}, {"mul", MulF64(a, b, r), prod}, {"fma", FmaF64(a, b, c, r), fma}} {
			if want, ok := refRound(c.ref, r, 53, 0x1p-1022, math.MaxFloat64); ok && !sameBits64(c.got, want) {
				t.Fatalf("%s.%v(%#x, %#x, %#x) = %g, want %g", c.name, r, ab, bb, cb, c.got, want)
			}
		}
		if b != 0 && a != 0 {
			q := new(big.Float).SetPrec(300).SetMode(bigModes[r]).Quo(e[0], e[1])
			if want, ok := refRound(q, r, 53, 0x1p-1022, math.MaxFloat64); ok && !sameBits64(DivF64(a, b, r), want) {
				t.Fatalf("div.%v(%#x, %#x) = %g, want %g", r, ab, bb, DivF64(a, b, r), want)
			}
		}
		if a > 0 {
			s := new(big.Float).SetPrec(300).SetMode(bigModes[r]).Sqrt(e[0])
			if want, ok := refRound(s, r, 53, 0x1p-1022, math.MaxFloat64); ok && !sameBits64(SqrtF64(a, r), want) {
				t.Fatalf("sqrt.%v(%#x) = %g, want %g", r, ab, SqrtF64(a, r), want)
			}
		}
	}
}

func FuzzCvtNarrow(f *testing.F) {
	for _, s := range []uint32{0x7F800000, 0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x00008000, 0x477FF000, 0x33000000, 0xC77FF000} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, xb uint32) {
		x := f32(xb)
		if x != x || math.IsInf(float64(x), 0) {
			return
		}
		// The bf16 bit-trick fast path agrees with the generic rounder.
		fast := CvtBF16F32(x, RN, false)
		slow := uint16(math.Float32bits(float32(fmtBF16.round(float64(x), RN))) >> 16)
		if fast != slow {
			t.Fatalf("bf16(%#x): bit trick %#04x, generic %#04x", xb, fast, slow)
		}
		for _, r := range allModes {
			// bf16 and f16 in their normal ranges against math/big.
			if x == 0 {
				continue
			}
			e := exact(float64(x))[0]
			if want, ok := refRound(e, r, 8, 0x1p-126, 0x1.FEp127); ok {
				if got := float64(BF16ToF32(CvtBF16F32(x, r, false))); !sameBits64(got, want) {
					t.Fatalf("bf16.%v(%#x) = %g, want %g", r, xb, got, want)
				}
			}
			if want, ok := refRound(e, r, 11, 0x1p-14, 65504); ok {
				if got := float64(F16ToF32(CvtF16F32(x, r, false))); !sameBits64(got, want) {
					t.Fatalf("f16.%v(%#x) = %g, want %g", r, xb, got, want)
				}
			}
			// fp32 → f64 → fp32 is the identity in every mode.
			if got := CvtF32F64(float64(x), rnd(r)); math.Float32bits(got) != xb {
				t.Fatalf("cvt.%v.f32.f64 of exact %#x = %#x", r, xb, math.Float32bits(got))
			}
		}
		// Integer conversions: an fp32 integer survives s64 → f32 unchanged.
		if v := math.Trunc(float64(x)); v == float64(x) && math.Abs(v) < 0x1p62 {
			if got := CvtSToF32(CvtFToS(v, false, RZ, 64), RN); got != x && !(x == 0) {
				t.Fatalf("s64 round trip of %g = %g", x, got)
			}
		}
	})
}

// TestArithOracleTiny drives the fuzz checks with operands whose results
// land in the subnormal and overflow ranges, which uniformly random bit
// patterns rarely reach.
func TestArithOracleTiny(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	exp32 := func(lo, hi int) uint32 {
		return uint32(rng.IntN(2))<<31 | uint32(lo+rng.IntN(hi-lo+1))<<23 | rng.Uint32()&0x7FFFFF
	}
	exp64 := func(lo, hi int) uint64 {
		return uint64(rng.IntN(2))<<63 | uint64(lo+rng.IntN(hi-lo+1))<<52 | rng.Uint64()&(1<<52-1)
	}
	for range 3000 {
		checkF32Arith(t, exp32(0, 40), exp32(90, 130), exp32(0, 10))        // tiny products and sums
		checkF32Arith(t, exp32(200, 254), exp32(120, 160), exp32(240, 254)) // overflow
		checkF64Arith(t, exp64(0, 60), exp64(950, 1030), exp64(0, 10))
		checkF64Arith(t, exp64(1900, 2046), exp64(1000, 1100), exp64(2000, 2046))
	}
}
