package ptxmath

import (
	"math"
	"testing"
)

func TestApproxF32(t *testing.T) {
	inf, ninf := f32(0x7F800000), f32(0xFF800000)
	negz := f32(0x80000000)
	nan := f32(0x7FC00001)
	for _, c := range []struct {
		name string
		got  float32
		want uint32
	}{
		// ex2: ISA corner cases and exact powers of two.
		{"ex2(1)", Ex2ApproxF32(1, false), 0x40000000},
		{"ex2(-inf)", Ex2ApproxF32(ninf, false), 0x00000000},
		{"ex2(+inf)", Ex2ApproxF32(inf, false), 0x7F800000},
		{"ex2(-0)", Ex2ApproxF32(negz, false), 0x3F800000},
		{"ex2(NaN)", Ex2ApproxF32(nan, false), CanonicalNaN32},
		{"ex2(-126)", Ex2ApproxF32(-126, false), 0x00800000},
		{"ex2(-127)", Ex2ApproxF32(-127, false), 0x00400000},    // subnormal kept
		{"ex2.ftz(-127)", Ex2ApproxF32(-127, true), 0x00000000}, // flushed
		{"ex2(-150)", Ex2ApproxF32(-150, false), 0x00000000},    // 2^-150 ties to 0
		{"ex2(128)", Ex2ApproxF32(128, false), 0x7F800000},
		{"ex2(0.5)", Ex2ApproxF32(0.5, false), 0x3FB504F3}, // sqrt(2) rounded to nearest
		{"ex2(denorm)", Ex2ApproxF32(f32(1), false), 0x3F800000},
		// lg2
		{"lg2(8)", Lg2ApproxF32(8, false), 0x40400000},
		{"lg2(0)", Lg2ApproxF32(0, false), 0xFF800000},
		{"lg2(-0)", Lg2ApproxF32(negz, false), 0xFF800000},
		{"lg2(-1)", Lg2ApproxF32(-1, false), CanonicalNaN32},
		{"lg2(inf)", Lg2ApproxF32(inf, false), 0x7F800000},
		{"lg2(2^-149)", Lg2ApproxF32(f32(1), false), 0xC3150000}, // -149
		{"lg2.ftz(2^-149)", Lg2ApproxF32(f32(1), true), 0xFF800000},
		// rsqrt: 1/sqrt(2) = 0.70710678…; 0x3F3504F3 = 0.70710677 is nearest.
		{"rsqrt(4)", RsqrtApproxF32(4, false), 0x3F000000},
		{"rsqrt(2)", RsqrtApproxF32(2, false), 0x3F3504F3},
		{"rsqrt(-0)", RsqrtApproxF32(negz, false), 0xFF800000},
		{"rsqrt(+0)", RsqrtApproxF32(0, false), 0x7F800000},
		{"rsqrt(inf)", RsqrtApproxF32(inf, false), 0x00000000},
		{"rsqrt(-1)", RsqrtApproxF32(-1, false), CanonicalNaN32},
		{"rsqrt.ftz(denorm)", RsqrtApproxF32(f32(1), true), 0x7F800000},
		// 2^-149: 1/sqrt = 2^74.5 = 2^74·sqrt(2): exponent field 201 = 0xC9.
		{"rsqrt(denorm)", RsqrtApproxF32(f32(1), false), 0x64B504F3},
		{"rcp(3)", RcpApproxF32(3, false), 0x3EAAAAAB},
		{"rcp(-0)", RcpApproxF32(negz, false), 0xFF800000},
		{"rcp(-inf)", RcpApproxF32(ninf, false), 0x80000000},
		{"rcp.ftz(2^127)", RcpApproxF32(f32(0x7F000000), true), 0x00000000},
		{"sqrt.approx(2)", SqrtApproxF32(2, false), 0x3FB504F3},
		{"sqrt.approx(-0)", SqrtApproxF32(negz, false), 0x80000000},
		{"div.full(1,3)", DivFullF32(1, 3, false), 0x3EAAAAAB},
		{"div.approx(1,3)", DivApproxF32(1, 3, false), 0x3EAAAAAB},
		// |b| in (2^126, 2^128): the ISA defines a sign-preserving zero, or NaN for infinite a.
		{"div.approx big b", DivApproxF32(1, f32(0xFF000000), false), 0x80000000},
		{"div.approx big b inf", DivApproxF32(inf, f32(0x7F000000), false), CanonicalNaN32},
		{"div.approx 2^126", DivApproxF32(1, f32(0x7E800000), false), 0x00800000}, // 2^-126, still in range
		{"sin(-0)", SinApproxF32(negz, false), 0x80000000},
		{"sin(inf)", SinApproxF32(inf, false), CanonicalNaN32},
		{"cos(0)", CosApproxF32(0, false), 0x3F800000},
		{"tanh(-inf)", TanhApproxF32(ninf), 0xBF800000},
		{"tanh(denorm)", TanhApproxF32(f32(3)), 0x00000003},
	} {
		check32(t, c.name, c.got, c.want)
	}
	// Away from exact cases the result is the float64 value rounded to nearest.
	for _, x := range []float32{0.1, -3.7, 17.25, -100} {
		if got, want := Ex2ApproxF32(x, false), float32(math.Exp2(float64(x))); got != want {
			t.Errorf("ex2(%g) = %g, want %g", x, got, want)
		}
	}
}

func TestApproxF64(t *testing.T) {
	// 3.0 = 0x4008000000000000; 1/3 = 0x3FD5555555555555 whose low word
	// 0x55555555 is below half, so the upper word is kept and the low word zeroed.
	check64(t, "rcp.approx.ftz.f64(3)", RcpApproxFtzF64(3), 0x3FD5555500000000)
	// The low word of the input is ignored.
	check64(t, "rcp.approx.ftz.f64 low bits", RcpApproxFtzF64(f64(0x4008000012345678)), 0x3FD5555500000000)
	// 1/1.5 = 0x3FE5555555555555: low word also below half.
	check64(t, "rcp.approx.ftz.f64(1.5)", RcpApproxFtzF64(1.5), 0x3FE5555500000000)
	// 1/(1+2^-20) = 2^-1·(2 - 2^-19 + 2^-39 - …): fraction bits 19 ones, a
	// zero, then a low word of about 2^13 (< 2^31): rounds down to the upper word.
	check64(t, "rcp.approx.ftz.f64(1+2^-20)", RcpApproxFtzF64(1+0x1p-20), 0x3FEFFFFE00000000)
	check64(t, "rcp.approx.ftz.f64(NaN)", RcpApproxFtzF64(math.NaN()), 0x7FFFFFFF00000000)
	check64(t, "rcp.approx.ftz.f64(+0)", RcpApproxFtzF64(0), 0x7FF0000000000000)
	check64(t, "rcp.approx.ftz.f64(-0)", RcpApproxFtzF64(math.Copysign(0, -1)), 0xFFF0000000000000)
	check64(t, "rcp.approx.ftz.f64(+denorm)", RcpApproxFtzF64(f64(0x0000000100000000)), 0x7FF0000000000000)
	check64(t, "rcp.approx.ftz.f64(-inf)", RcpApproxFtzF64(math.Inf(-1)), 0x8000000000000000)
	// 1/(1.5·2^1023) is subnormal: flushed.
	check64(t, "rcp.approx.ftz.f64 denorm result", RcpApproxFtzF64(f64(0x7FE8000000000000)), 0)
	check64(t, "rsqrt.approx.ftz.f64(4)", RsqrtApproxFtzF64(4), 0x3FE0000000000000)
	check64(t, "rsqrt.approx.ftz.f64(-1)", RsqrtApproxFtzF64(-1), 0x7FFFFFFF00000000)
	check64(t, "rsqrt.approx.ftz.f64(-0)", RsqrtApproxFtzF64(math.Copysign(0, -1)), 0xFFF0000000000000)
	check64(t, "rsqrt.approx.f64(4)", RsqrtApproxF64(4), 0x3FE0000000000000)
	check64(t, "rsqrt.approx.f64(-0)", RsqrtApproxF64(math.Copysign(0, -1)), 0xFFF0000000000000)
	check64(t, "rsqrt.approx.f64(-1)", RsqrtApproxF64(-1), CanonicalNaN64)
}
