package ptxmath

import (
	"math"
	"testing"
)

// Bit patterns: 0x3FF0000000000000 = 1.0, …01 = 1+2^-52; 0x3CA0000000000000 =
// 2^-53 (half an ulp of 1); 0x3C90000000000000 = 2^-54; 0x3C30000000000000 =
// 2^-60; 0x7FEFFFFFFFFFFFFF = MaxFloat64; 0x0000000000000001 = 2^-1074.

type op64Case struct {
	name    string
	a, b, c uint64
	r       Rounding
	want    uint64
}

func TestAddF64(t *testing.T) {
	cases := []op64Case{
		{"tie-rn", 0x3FF0000000000000, 0x3CA0000000000000, 0, RN, 0x3FF0000000000000},
		{"tie-rp", 0x3FF0000000000000, 0x3CA0000000000000, 0, RP, 0x3FF0000000000001},
		{"tie-rz", 0x3FF0000000000000, 0x3CA0000000000000, 0, RZ, 0x3FF0000000000000},
		{"tie-odd-rn", 0x3FF0000000000001, 0x3CA0000000000000, 0, RN, 0x3FF0000000000002},
		{"neg-rm", 0xBFF0000000000000, 0xBCA0000000000000, 0, RM, 0xBFF0000000000001},
		{"neg-rp", 0xBFF0000000000000, 0xBCA0000000000000, 0, RP, 0xBFF0000000000000},
		{"quarter-rp", 0x3FF0000000000000, 0x3C90000000000000, 0, RP, 0x3FF0000000000001},
		{"quarter-rm", 0x3FF0000000000000, 0x3C90000000000000, 0, RM, 0x3FF0000000000000},
		{"ovf-rn", 0x7FEFFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0, RN, 0x7FF0000000000000},
		{"ovf-rz", 0x7FEFFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0, RZ, 0x7FEFFFFFFFFFFFFF},
		{"ovf-rm", 0x7FEFFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0, RM, 0x7FEFFFFFFFFFFFFF},
		{"ovf-rp", 0x7FEFFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF, 0, RP, 0x7FF0000000000000},
		{"neg-ovf-rm", 0xFFEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0, RM, 0xFFF0000000000000},
		{"neg-ovf-rz", 0xFFEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0, RZ, 0xFFEFFFFFFFFFFFFF},
		// Max + 2^970 (half an ulp of Max): not quite overflow under RZ, Inf under RN (tie to even 2^1024).
		{"max-halfulp-rn", 0x7FEFFFFFFFFFFFFF, 0x7C90000000000000, 0, RN, 0x7FF0000000000000},
		{"max-halfulp-rz", 0x7FEFFFFFFFFFFFFF, 0x7C90000000000000, 0, RZ, 0x7FEFFFFFFFFFFFFF},
		{"zero-rn", 0x3FF0000000000000, 0xBFF0000000000000, 0, RN, 0},
		{"zero-rm", 0x3FF0000000000000, 0xBFF0000000000000, 0, RM, 0x8000000000000000},
		{"denorm", 1, 1, 0, RM, 2},
		{"nan", 0x7FF8000000000001, 0, 0, RN, CanonicalNaN64},
		{"inf-inf", 0x7FF0000000000000, 0xFFF0000000000000, 0, RP, CanonicalNaN64},
		{"inf", 0xFFF0000000000000, 0x3FF0000000000000, 0, RZ, 0xFFF0000000000000},
	}
	for _, c := range cases {
		check64(t, "add."+c.name, AddF64(f64(c.a), f64(c.b), c.r), c.want)
	}
	check64(t, "sub.tie-rp", SubF64(1, -0x1p-53, RP), 0x3FF0000000000001)
}

func TestMulFmaF64(t *testing.T) {
	mul := []op64Case{
		// (1+2^-52)^2 = 1 + 2^-51 + 2^-104.
		{"sq-rn", 0x3FF0000000000001, 0x3FF0000000000001, 0, RN, 0x3FF0000000000002},
		{"sq-rz", 0x3FF0000000000001, 0x3FF0000000000001, 0, RZ, 0x3FF0000000000002},
		{"sq-rp", 0x3FF0000000000001, 0x3FF0000000000001, 0, RP, 0x3FF0000000000003},
		{"sq-neg-rm", 0x3FF0000000000001, 0xBFF0000000000001, 0, RM, 0xBFF0000000000003},
		// 2^-1074 · 0.5 = 2^-1075: tie → 0 (RN), 2^-1074 (RP); negative RM → -2^-1074.
		{"half-denorm-rn", 1, 0x3FE0000000000000, 0, RN, 0},
		{"half-denorm-rp", 1, 0x3FE0000000000000, 0, RP, 1},
		{"half-denorm-neg-rm", 0x8000000000000001, 0x3FE0000000000000, 0, RM, 0x8000000000000001},
		{"half-denorm-neg-rp", 0x8000000000000001, 0x3FE0000000000000, 0, RP, 0x8000000000000000},
		// 2^-600 · 2^-600 = 2^-1200, far below the subnormal range.
		{"deep-under-rp", 0x1A70000000000000, 0x1A70000000000000, 0, RP, 1},
		{"deep-under-rz", 0x1A70000000000000, 0x1A70000000000000, 0, RZ, 0},
		{"deep-under-neg-rm", 0x9A70000000000000, 0x1A70000000000000, 0, RM, 0x8000000000000001},
		// 2^600 · 2^600 overflows.
		{"ovf-rz", 0x6570000000000000, 0x6570000000000000, 0, RZ, 0x7FEFFFFFFFFFFFFF},
		{"ovf-rp", 0x6570000000000000, 0x6570000000000000, 0, RP, 0x7FF0000000000000},
		{"ovf-neg-rp", 0xE570000000000000, 0x6570000000000000, 0, RP, 0xFFEFFFFFFFFFFFFF},
		{"zero", 0x8000000000000000, 0x3FF0000000000000, 0, RP, 0x8000000000000000},
		{"inf-zero", 0x7FF0000000000000, 0, 0, RM, CanonicalNaN64},
	}
	for _, c := range mul {
		check64(t, "mul."+c.name, MulF64(f64(c.a), f64(c.b), c.r), c.want)
	}
	fma := []op64Case{
		// (1+2^-52)·(-1) - 2^-60 = -(1 + 2^-52 + 2^-60).
		{"rm-neg", 0x3FF0000000000001, 0xBFF0000000000000, 0xBC30000000000000, RM, 0xBFF0000000000002},
		{"rp-neg", 0x3FF0000000000001, 0xBFF0000000000000, 0xBC30000000000000, RP, 0xBFF0000000000001},
		{"rn-neg", 0x3FF0000000000001, 0xBFF0000000000000, 0xBC30000000000000, RN, 0xBFF0000000000001},
		{"zero-rm", 0x3FF0000000000000, 0x3FF0000000000000, 0xBFF0000000000000, RM, 0x8000000000000000},
		{"zero-rp", 0x3FF0000000000000, 0x3FF0000000000000, 0xBFF0000000000000, RP, 0},
		{"zeroprod-rm", 0, 0x3FF0000000000000, 0x3FF0000000000000, RM, 0x3FF0000000000000},
		{"zeroprod-zero-rm", 0, 0x3FF0000000000000, 0, RM, 0},
		{"negzeroprod", 0x8000000000000000, 0x3FF0000000000000, 0x8000000000000000, RP, 0x8000000000000000},
		// 2^-600·2^-600 + 2^-1074 = 2^-1074 + 2^-1200: RP one unit up, RZ stays.
		{"tiny-rp", 0x1A70000000000000, 0x1A70000000000000, 1, RP, 2},
		{"tiny-rz", 0x1A70000000000000, 0x1A70000000000000, 1, RZ, 1},
		// Max·2 - Max = Max exactly, although the product overflows.
		{"no-intermediate-ovf", 0x7FEFFFFFFFFFFFFF, 0x4000000000000000, 0xFFEFFFFFFFFFFFFF, RZ, 0x7FEFFFFFFFFFFFFF},
		{"nan", 0x7FF0000000000000, 0, 0x3FF0000000000000, RZ, CanonicalNaN64},
		{"inf", 0x7FF0000000000000, 0x3FF0000000000000, 0x3FF0000000000000, RZ, 0x7FF0000000000000},
	}
	for _, c := range fma {
		check64(t, "fma."+c.name, FmaF64(f64(c.a), f64(c.b), f64(c.c), c.r), c.want)
	}
}

func TestDivSqrtF64(t *testing.T) {
	// 1/3 = 1.0101…b·2^-2: 52 fraction bits 0x5555555555555 then 0101… = 1/3
	// ulp, so RN/RZ/RM truncate and RP rounds up.
	for _, c := range []struct {
		r       Rounding
		pos, ng uint64
	}{{RN, 0x3FD5555555555555, 0xBFD5555555555555}, {RZ, 0x3FD5555555555555, 0xBFD5555555555555},
		{RM, 0x3FD5555555555555, 0xBFD5555555555556}, {RP, 0x3FD5555555555556, 0xBFD5555555555555}} {
		check64(t, "div.1/3."+c.r.String(), DivF64(1, 3, c.r), c.pos)
		check64(t, "div.-1/3."+c.r.String(), DivF64(-1, 3, c.r), c.ng)
		check64(t, "rcp.3."+c.r.String(), RcpF64(3, c.r), c.pos)
	}
	// 2^-1074 / 2 = 2^-1075: tie → 0 under RN, 2^-1074 under RP.
	check64(t, "div.denorm-rn", DivF64(f64(1), 2, RN), 0)
	check64(t, "div.denorm-rp", DivF64(f64(1), 2, RP), 1)
	// 1 / 2^-1074 overflows.
	check64(t, "div.ovf-rz", DivF64(1, f64(1), RZ), 0x7FEFFFFFFFFFFFFF)
	check64(t, "div.ovf-rn", DivF64(1, f64(1), RN), 0x7FF0000000000000)
	check64(t, "div.0/0", DivF64(0, 0, RP), CanonicalNaN64)
	check64(t, "div.1/-0", DivF64(1, math.Copysign(0, -1), RZ), 0xFFF0000000000000)

	// sqrt(2) = 1.41421356237309504…; 0x3FF6A09E667F3BCD = 1.41421356237309514…
	// is above and nearer than 0x…BCC = 1.41421356237309492….
	for _, c := range []struct {
		r    Rounding
		want uint64
	}{{RN, 0x3FF6A09E667F3BCD}, {RZ, 0x3FF6A09E667F3BCC}, {RM, 0x3FF6A09E667F3BCC}, {RP, 0x3FF6A09E667F3BCD}} {
		check64(t, "sqrt.2."+c.r.String(), SqrtF64(2, c.r), c.want)
		// sqrt(2^-1073) = 2^-537·sqrt(2): exponent field 486 = 0x1E6.
		check64(t, "sqrt.denorm."+c.r.String(), SqrtF64(f64(2), c.r), 0x1E6<<52|c.want&(1<<52-1))
	}
	check64(t, "sqrt.2^-1074", SqrtF64(f64(1), RP), 0x1E60000000000000) // 2^-537 exactly
	check64(t, "sqrt.-0", SqrtF64(math.Copysign(0, -1), RM), 0x8000000000000000)
	check64(t, "sqrt.-1", SqrtF64(-1, RM), CanonicalNaN64)

	check64(t, "min(NaN,1)", MinF64(f64(0x7FF8000000000001), 1), 0x3FF0000000000000)
	check64(t, "max(NaN,NaN)", MaxF64(math.NaN(), math.NaN()), CanonicalNaN64)
	check64(t, "min(+0,-0)", MinF64(0, math.Copysign(0, -1)), 0x8000000000000000)
	check64(t, "max(-0,+0)", MaxF64(math.Copysign(0, -1), 0), 0)
	check64(t, "neg(0)", NegF64(0), 0x8000000000000000)
	check64(t, "abs(-2)", AbsF64(-2), 0x4000000000000000)
	check64(t, "copysign(-1,2)", CopysignF64(-1, 2), 0xC000000000000000)
}
