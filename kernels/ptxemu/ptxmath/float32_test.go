package ptxmath

import "testing"

// Bit patterns used below:
//   0x3F800000 = 1.0, 0x3F800001 = 1+2^-23, 0x3F800002 = 1+2^-22
//   0x33800000 = 2^-24 (half an ulp of 1.0), 0x33000000 = 2^-25
//   0x7F7FFFFF = MaxFloat32 = (2-2^-23)·2^127, its ulp is 2^104
//   0x00000001 = 2^-149 (smallest subnormal), 0x00800000 = 2^-126

type op32Case struct {
	name    string
	a, b, c uint32
	m       Mode
	want    uint32
}

func rnd(r Rounding) Mode { return Mode{Rnd: r} }

func TestAddF32(t *testing.T) {
	cases := []op32Case{
		// 1 + 2^-24 is the midpoint of 1 and 1+2^-23: RN ties to the even 1.0.
		{"tie-even", 0x3F800000, 0x33800000, 0, rnd(RN), 0x3F800000},
		{"tie-rz", 0x3F800000, 0x33800000, 0, rnd(RZ), 0x3F800000},
		{"tie-rm", 0x3F800000, 0x33800000, 0, rnd(RM), 0x3F800000},
		{"tie-rp", 0x3F800000, 0x33800000, 0, rnd(RP), 0x3F800001},
		// (1+2^-23) + 2^-24 is the midpoint of 1+2^-23 (odd) and 1+2^-22: RN goes up.
		{"tie-odd-up", 0x3F800001, 0x33800000, 0, rnd(RN), 0x3F800002},
		// 1 + 2^-25: below the midpoint.
		{"below-half-rn", 0x3F800000, 0x33000000, 0, rnd(RN), 0x3F800000},
		{"below-half-rp", 0x3F800000, 0x33000000, 0, rnd(RP), 0x3F800001},
		// -(1 + 2^-24): RM rounds away from zero, RP/RZ toward.
		{"neg-rm", 0xBF800000, 0xB3800000, 0, rnd(RM), 0xBF800001},
		{"neg-rp", 0xBF800000, 0xB3800000, 0, rnd(RP), 0xBF800000},
		{"neg-rz", 0xBF800000, 0xB3800000, 0, rnd(RZ), 0xBF800000},
		{"neg-rn", 0xBF800000, 0xB3800000, 0, rnd(RN), 0xBF800000},
		// Max + Max = 2^129-2^104 overflows: Inf under RN/RP, Max under RZ/RM.
		{"ovf-rn", 0x7F7FFFFF, 0x7F7FFFFF, 0, rnd(RN), 0x7F800000},
		{"ovf-rz", 0x7F7FFFFF, 0x7F7FFFFF, 0, rnd(RZ), 0x7F7FFFFF},
		{"ovf-rm", 0x7F7FFFFF, 0x7F7FFFFF, 0, rnd(RM), 0x7F7FFFFF},
		{"ovf-rp", 0x7F7FFFFF, 0x7F7FFFFF, 0, rnd(RP), 0x7F800000},
		{"neg-ovf-rm", 0xFF7FFFFF, 0xFF7FFFFF, 0, rnd(RM), 0xFF800000},
		{"neg-ovf-rp", 0xFF7FFFFF, 0xFF7FFFFF, 0, rnd(RP), 0xFF7FFFFF},
		// Max + 2^103 (0x73000000) is the midpoint of Max (odd significand)
		// and 2^128: the even neighbour is 2^128, so RN overflows to Inf.
		{"ovf-tie-rn", 0x7F7FFFFF, 0x73000000, 0, rnd(RN), 0x7F800000},
		{"ovf-tie-rz", 0x7F7FFFFF, 0x73000000, 0, rnd(RZ), 0x7F7FFFFF},
		// Exact zero sums: +0, but -0 under RM; -0 + -0 = -0.
		{"zero-rn", 0x3F800000, 0xBF800000, 0, rnd(RN), 0x00000000},
		{"zero-rm", 0x3F800000, 0xBF800000, 0, rnd(RM), 0x80000000},
		{"negzeros", 0x80000000, 0x80000000, 0, rnd(RN), 0x80000000},
		{"mixedzeros-rm", 0x00000000, 0x80000000, 0, rnd(RM), 0x80000000},
		{"mixedzeros-rp", 0x00000000, 0x80000000, 0, rnd(RP), 0x00000000},
		// Subnormals: 2^-149 + 2^-149 = 2^-148 exactly; flushed inputs give 0.
		{"denorm", 0x00000001, 0x00000001, 0, rnd(RN), 0x00000002},
		{"denorm-ftz", 0x00000001, 0x00000001, 0, Mode{FTZ: true}, 0x00000000},
		// (2^-126 + 2^-149) + (-2^-126) = 2^-149: subnormal result, flushed with .ftz.
		{"denorm-result", 0x00800001, 0x80800000, 0, rnd(RN), 0x00000001},
		{"denorm-result-ftz", 0x00800001, 0x80800000, 0, Mode{FTZ: true}, 0x00000000},
		{"neg-denorm-result-ftz", 0x80800001, 0x00800000, 0, Mode{FTZ: true}, 0x80000000},
		// .sat: 0.75+0.5 → 1, -0.5+0.25 → +0, 0.25+0.25 = 0.5, NaN → +0.
		{"sat-hi", 0x3F400000, 0x3F000000, 0, Mode{Sat: true}, 0x3F800000},
		{"sat-lo", 0xBF000000, 0x3E800000, 0, Mode{Sat: true}, 0x00000000},
		{"sat-mid", 0x3E800000, 0x3E800000, 0, Mode{Sat: true}, 0x3F000000},
		{"sat-nan", 0x7FC00001, 0x3F800000, 0, Mode{Sat: true}, 0x00000000},
		{"sat-negzero", 0x80000000, 0x80000000, 0, Mode{Sat: true}, 0x00000000},
		// NaN results are canonical; Inf - Inf is NaN; Inf + finite is Inf.
		{"nan-payload", 0x7FC00001, 0x3F800000, 0, rnd(RN), CanonicalNaN32},
		{"inf-inf", 0x7F800000, 0xFF800000, 0, rnd(RZ), CanonicalNaN32},
		{"inf", 0x7F800000, 0x3F800000, 0, rnd(RZ), 0x7F800000},
	}
	for _, c := range cases {
		check32(t, "add."+c.name, AddF32(f32(c.a), f32(c.b), c.m), c.want)
	}
	// sub is add of the negation: 1 - (-2^-24) ties like the first case.
	check32(t, "sub.tie-rp", SubF32(f32(0x3F800000), f32(0xB3800000), rnd(RP)), 0x3F800001)
	check32(t, "sub.zero-rm", SubF32(f32(0x3F800000), f32(0x3F800000), rnd(RM)), 0x80000000)
	check32(t, "sub.zero-rn", SubF32(f32(0x3F800000), f32(0x3F800000), rnd(RN)), 0x00000000)
}

func TestMulF32(t *testing.T) {
	cases := []op32Case{
		// (1+2^-23)^2 = 1 + 2^-22 + 2^-46: RN/RZ/RM 1+2^-22, RP one ulp up.
		{"sq-rn", 0x3F800001, 0x3F800001, 0, rnd(RN), 0x3F800002},
		{"sq-rz", 0x3F800001, 0x3F800001, 0, rnd(RZ), 0x3F800002},
		{"sq-rp", 0x3F800001, 0x3F800001, 0, rnd(RP), 0x3F800003},
		{"sq-neg-rm", 0x3F800001, 0xBF800001, 0, rnd(RM), 0xBF800003},
		{"sq-neg-rp", 0x3F800001, 0xBF800001, 0, rnd(RP), 0xBF800002},
		// 2^-126 · 0.5 = 2^-127 = subnormal 0x00400000 exactly; flushed under .ftz.
		{"to-denorm", 0x00800000, 0x3F000000, 0, rnd(RN), 0x00400000},
		{"to-denorm-ftz", 0x00800000, 0x3F000000, 0, Mode{FTZ: true}, 0x00000000},
		// 2^-149 · 0.5 = 2^-150, the midpoint of 0 and 2^-149: RN → 0 (even).
		{"half-denorm-rn", 0x00000001, 0x3F000000, 0, rnd(RN), 0x00000000},
		{"half-denorm-rp", 0x00000001, 0x3F000000, 0, rnd(RP), 0x00000001},
		{"half-denorm-neg-rn", 0x80000001, 0x3F000000, 0, rnd(RN), 0x80000000},
		{"half-denorm-neg-rm", 0x80000001, 0x3F000000, 0, rnd(RM), 0x80000001},
		// 3·2^-149 · 0.5 = 1.5·2^-149: midpoint of 1 and 2 units, even is 2.
		{"denorm-tie-odd", 0x00000003, 0x3F000000, 0, rnd(RN), 0x00000002},
		{"denorm-in-ftz", 0x00000003, 0x3F000000, 0, Mode{FTZ: true}, 0x00000000},
		// Overflow: 2^127 · 2 → Inf (RN), Max (RZ).
		{"ovf-rn", 0x7F000000, 0x40000000, 0, rnd(RN), 0x7F800000},
		{"ovf-rz", 0x7F000000, 0x40000000, 0, rnd(RZ), 0x7F7FFFFF},
		{"zero-sign", 0x80000000, 0x3F800000, 0, rnd(RN), 0x80000000},
		{"inf-zero", 0x7F800000, 0x00000000, 0, rnd(RN), CanonicalNaN32},
		{"sat", 0x40000000, 0x40000000, 0, Mode{Sat: true}, 0x3F800000},
	}
	for _, c := range cases {
		check32(t, "mul."+c.name, MulF32(f32(c.a), f32(c.b), c.m), c.want)
	}
}

func TestFmaF32(t *testing.T) {
	cases := []op32Case{
		// (1+2^-12)^2 + 2^-80 = 1 + 2^-11 + 2^-24 + 2^-80: just above the
		// midpoint of 1+2^-11 (0x3F801000) and 0x3F801001, so RN rounds up.
		// Rounding through a float64 fma first would land exactly on the
		// midpoint and tie down to 0x3F801000 (double rounding).
		{"double-rounding", 0x3F800800, 0x3F800800, 0x17800000, rnd(RN), 0x3F801001},
		{"double-rounding-rz", 0x3F800800, 0x3F800800, 0x17800000, rnd(RZ), 0x3F801000},
		// (1+2^-23)·(-1) - 2^-25 = -(1 + 2^-23 + 2^-25): .rm goes away from zero.
		{"rm-neg", 0x3F800001, 0xBF800000, 0xB3000000, rnd(RM), 0xBF800002},
		{"rp-neg", 0x3F800001, 0xBF800000, 0xB3000000, rnd(RP), 0xBF800001},
		{"rn-neg", 0x3F800001, 0xBF800000, 0xB3000000, rnd(RN), 0xBF800001},
		// 1·1 - 1 = 0: +0, -0 under .rm.
		{"zero-rn", 0x3F800000, 0x3F800000, 0xBF800000, rnd(RN), 0x00000000},
		{"zero-rm", 0x3F800000, 0x3F800000, 0xBF800000, rnd(RM), 0x80000000},
		// (-0)·1 + (-0) = -0 in every mode.
		{"negzero", 0x80000000, 0x3F800000, 0x80000000, rnd(RP), 0x80000000},
		// 2^-75 · 2^-75 + 0 = 2^-150: tie to 0 under RN, 2^-149 under RP; .ftz → 0.
		{"tiny-rn", 0x1A000000, 0x1A000000, 0, rnd(RN), 0x00000000},
		{"tiny-rp", 0x1A000000, 0x1A000000, 0, rnd(RP), 0x00000001},
		{"tiny-rp-ftz", 0x1A000000, 0x1A000000, 0, Mode{Rnd: RP, FTZ: true}, 0x00000000},
		// Inf·0 + 1 is NaN; 2·0.5 + 0.5 saturates to 1.
		{"nan", 0x7F800000, 0, 0x3F800000, rnd(RN), CanonicalNaN32},
		{"sat", 0x40000000, 0x3F000000, 0x3F000000, Mode{Sat: true}, 0x3F800000},
	}
	for _, c := range cases {
		check32(t, "fma."+c.name, FmaF32(f32(c.a), f32(c.b), f32(c.c), c.m), c.want)
	}
}

func TestDivSqrtF32(t *testing.T) {
	// 1/3 = 1.0101…b·2^-2: the 23 fraction bits are 0x2AAAAA followed by
	// 1010…, i.e. 2/3 of an ulp, so RN and RP round up to 0x3EAAAAAB and RZ/RM
	// truncate to 0x3EAAAAAA; for -1/3 RM/RP swap.
	for _, c := range []struct {
		r       Rounding
		pos, ng uint32
	}{{RN, 0x3EAAAAAB, 0xBEAAAAAB}, {RZ, 0x3EAAAAAA, 0xBEAAAAAA}, {RM, 0x3EAAAAAA, 0xBEAAAAAB}, {RP, 0x3EAAAAAB, 0xBEAAAAAA}} {
		check32(t, "div.1/3."+c.r.String(), DivF32(1, 3, rnd(c.r)), c.pos)
		check32(t, "div.-1/3."+c.r.String(), DivF32(-1, 3, rnd(c.r)), c.ng)
		check32(t, "rcp.3."+c.r.String(), RcpF32(3, rnd(c.r)), c.pos)
	}
	check32(t, "div.1/0", DivF32(1, 0, rnd(RN)), 0x7F800000)
	check32(t, "div.-1/0", DivF32(-1, 0, rnd(RN)), 0xFF800000)
	check32(t, "div.1/-0", DivF32(1, f32(0x80000000), rnd(RN)), 0xFF800000)
	check32(t, "div.0/0", DivF32(0, 0, rnd(RN)), CanonicalNaN32)
	check32(t, "div.1/inf", DivF32(1, f32(0x7F800000), rnd(RM)), 0x00000000)
	// 1 / 2^127 = 2^-127 = 0x00400000 (subnormal), flushed by .ftz.
	check32(t, "div.denorm", DivF32(1, f32(0x7F000000), rnd(RN)), 0x00400000)
	check32(t, "div.denorm-ftz", DivF32(1, f32(0x7F000000), Mode{FTZ: true}), 0x00000000)
	// 1 / 2^-149 overflows (2^149): Inf under RN, Max under RZ.
	check32(t, "div.ovf-rz", DivF32(1, f32(0x00000001), rnd(RZ)), 0x7F7FFFFF)
	check32(t, "div.ovf-ftz", DivF32(1, f32(0x00000001), Mode{FTZ: true}), 0x7F800000)

	// sqrt(2) = 1.41421356237…; 0x3FB504F3 = 1.41421353816… is below it and
	// 0x3FB504F4 = 1.41421365737… above, the lower being nearer.
	for _, c := range []struct {
		r    Rounding
		want uint32
	}{{RN, 0x3FB504F3}, {RZ, 0x3FB504F3}, {RM, 0x3FB504F3}, {RP, 0x3FB504F4}} {
		check32(t, "sqrt.2."+c.r.String(), SqrtF32(2, rnd(c.r)), c.want)
	}
	check32(t, "sqrt.4", SqrtF32(4, rnd(RP)), 0x40000000)
	check32(t, "sqrt.-0", SqrtF32(f32(0x80000000), rnd(RN)), 0x80000000)
	check32(t, "sqrt.-1", SqrtF32(-1, rnd(RN)), CanonicalNaN32)
	check32(t, "sqrt.inf", SqrtF32(f32(0x7F800000), rnd(RN)), 0x7F800000)
	// sqrt(2^-149) = 2^-75·sqrt(2): exponent field 52 (0x1A000000) with sqrt(2)'s
	// fraction 0x3504F3; .ftz flushes the subnormal input to +0.
	check32(t, "sqrt.denorm", SqrtF32(f32(0x00000001), rnd(RN)), 0x1A3504F3)
	check32(t, "sqrt.denorm-ftz", SqrtF32(f32(0x00000001), Mode{FTZ: true}), 0x00000000)
}

func TestMinMaxF32(t *testing.T) {
	nan := f32(0x7FC00001)
	check32(t, "max(NaN,1)", MaxF32(nan, 1, false), 0x3F800000)
	check32(t, "min(1,NaN)", MinF32(1, nan, false), 0x3F800000)
	check32(t, "max(NaN,NaN)", MaxF32(nan, nan, false), CanonicalNaN32)
	check32(t, "min(-0,+0)", MinF32(f32(0x80000000), 0, false), 0x80000000)
	check32(t, "min(+0,-0)", MinF32(0, f32(0x80000000), false), 0x80000000)
	check32(t, "max(-0,+0)", MaxF32(f32(0x80000000), 0, false), 0x00000000)
	check32(t, "max(+0,-0)", MaxF32(0, f32(0x80000000), false), 0x00000000)
	check32(t, "max(-1,-2)", MaxF32(-1, -2, false), 0xBF800000)
	check32(t, "min(-1,-2)", MinF32(-1, -2, false), 0xC0000000)
	// .ftz: a subnormal compares as a zero of its sign.
	check32(t, "max.ftz(denorm,-0)", MaxF32(f32(0x00000001), f32(0x80000000), true), 0x00000000)
	check32(t, "max(denorm,0)", MaxF32(f32(0x00000001), 0, false), 0x00000001)

	check32(t, "abs(-1)", AbsF32(-1, false), 0x3F800000)
	check32(t, "abs(-NaN)", AbsF32(f32(0xFFC00000), false), 0x7FC00000)
	check32(t, "abs.ftz(-denorm)", AbsF32(f32(0x80000001), true), 0x00000000)
	check32(t, "neg(+0)", NegF32(0, false), 0x80000000)
	check32(t, "neg.ftz(denorm)", NegF32(f32(0x00000001), true), 0x80000000)
	check32(t, "copysign(-1,2)", CopysignF32(-1, 2), 0xC0000000)
	check32(t, "copysign(1,-NaN)", CopysignF32(1, f32(0xFFC00000)), 0x7FC00000)
	check32(t, "atom.add global ftz", AtomAddF32(f32(0x00000001), f32(0x00000001), true), 0x00000000)
	check32(t, "atom.add shared", AtomAddF32(f32(0x00000001), f32(0x00000001), false), 0x00000002)
}

func TestRoundingParse(t *testing.T) {
	for s, want := range map[string]Rounding{"rn": RN, ".rz": RZ, "rmi": RM, ".rpi": RP, ".rni": RN} {
		r, err := ParseRounding(s)
		if err != nil || r != want {
			t.Errorf("ParseRounding(%q) = %v, %v; want %v", s, r, err, want)
		}
	}
	for _, bad := range []string{"rx", "rna", "", ".rnii"} {
		if _, err := ParseRounding(bad); err == nil {
			t.Errorf("ParseRounding accepted %q", bad)
		}
	}
	if s := Rounding(9).String(); s != "Rounding(9)" {
		t.Errorf("invalid rounding prints %q", s)
	}
}
