package ptxmath

import (
	"math"
	"testing"
)

func TestCvtBF16(t *testing.T) {
	cases := []struct {
		name string
		in   uint32
		r    Rounding
		relu bool
		want uint16
	}{
		// The low 16 bits are exactly half an ulp: ties go to the even upper half.
		{"tie-even", 0x3F808000, RN, false, 0x3F80},
		{"tie-odd", 0x3F818000, RN, false, 0x3F82},
		{"above-tie", 0x3F808001, RN, false, 0x3F81},
		{"below-tie", 0x3F807FFF, RN, false, 0x3F80},
		{"neg-tie", 0xBF808000, RN, false, 0xBF80},
		// Rounding up from the largest finite bf16 magnitude reaches Inf.
		{"max-rn", 0x7F7FFFFF, RN, false, 0x7F80},
		{"max-rz", 0x7F7FFFFF, RZ, false, 0x7F7F},
		{"inf", 0xFF800000, RN, false, 0xFF80},
		// Subnormals round in the same 16-bit grid.
		{"denorm-tie", 0x00008000, RN, false, 0x0000},
		{"denorm-tie-odd", 0x00018000, RN, false, 0x0002},
		// Directed modes on a negative value: RM away from zero.
		{"neg-rm", 0xBF800001, RM, false, 0xBF81},
		{"neg-rp", 0xBF800001, RP, false, 0xBF80},
		{"pos-rp", 0x3F800001, RP, false, 0x3F81},
		{"pos-rz", 0x3F80FFFF, RZ, false, 0x3F80},
		// NaN stays NaN (quiet bit 0x0040 set, sign and top payload kept);
		// 0x7F800001 must not round to Inf 0x7F80.
		{"qnan", 0x7FC00001, RN, false, 0x7FC0},
		{"snan-low-payload", 0x7F800001, RN, false, 0x7FC0},
		{"neg-nan", 0xFF812345, RN, false, 0xFFC1},
		{"nan-all-ones", 0x7FFFFFFF, RN, false, 0x7FFF},
		// .relu: negatives → +0, NaN → canonical 0x7FFF.
		{"relu-neg", 0xBF800000, RN, true, 0x0000},
		{"relu-negzero", 0x80000000, RN, true, 0x0000},
		{"relu-pos", 0x3F808000, RN, true, 0x3F80},
		{"relu-nan", 0xFFC00000, RN, true, 0x7FFF},
	}
	for _, c := range cases {
		if got := CvtBF16F32(f32(c.in), c.r, c.relu); got != c.want {
			t.Errorf("cvt.%v bf16(%#08x) relu=%v = %#04x, want %#04x", c.r, c.in, c.relu, got, c.want)
		}
	}
	// bf16x2: the first source (a) goes to the upper half: 1.0 → 0x3F80, 2.0 → 0x4000.
	if got := CvtBF16x2F32(1, 2, RN, false); got != 0x3F804000 {
		t.Errorf("cvt.rn.bf16x2.f32(1, 2) = %#08x, want 0x3F804000", got)
	}
	check32(t, "bf16→f32", BF16ToF32(0xC049), 0xC0490000)
}

func TestCvtF16(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		r    Rounding
		want uint16
	}{
		{"one", 1, RN, 0x3C00},
		{"max", 65504, RN, 0x7BFF},
		// 65520 is the midpoint of 65504 (odd significand 0x3FF) and 65536:
		// the even neighbour overflows, so RN gives Inf and RZ the maximum.
		{"ovf-tie-rn", 65520, RN, 0x7C00},
		{"ovf-tie-rz", 65520, RZ, 0x7BFF},
		{"ovf-neg-rp", -1e6, RP, 0xFBFF},
		{"ovf-neg-rm", -1e6, RM, 0xFC00},
		// 2^-24 is the smallest subnormal; 2^-25 ties to 0; 3·2^-25 ties to 2 units.
		{"min-denorm", 0x1p-24, RN, 0x0001},
		{"denorm-tie", 0x1p-25, RN, 0x0000},
		{"denorm-tie-rp", 0x1p-25, RP, 0x0001},
		{"denorm-tie-odd", 3 * 0x1p-25, RN, 0x0002},
		// 1 + 2^-11 is the midpoint of 1 and 1+2^-10: even is 1.0.
		{"tie", 1 + 0x1p-11, RN, 0x3C00},
		{"tie-odd", 1 + 3*0x1p-11, RN, 0x3C02},
		{"neg-rm", -(1 + 0x1p-12), RM, 0xBC01},
		{"negzero", float32(math.Copysign(0, -1)), RN, 0x8000},
	}
	for _, c := range cases {
		if got := CvtF16F32(c.in, c.r, false); got != c.want {
			t.Errorf("cvt.%v.f16.f32 %s(%g) = %#04x, want %#04x", c.r, c.name, c.in, got, c.want)
		}
	}
	if got := CvtF16F32(f32(0x7FC00000), RN, false); got != 0x7E00 {
		t.Errorf("f16 of NaN = %#04x, want 0x7E00", got)
	}
	if got := CvtF16F32(-1, RN, true); got != 0 {
		t.Errorf("f16.relu of -1 = %#04x, want 0", got)
	}
	if got := CvtF16x2F32(1, -2, RN, false); got != 0x3C00C000 {
		t.Errorf("f16x2(1, -2) = %#08x, want 0x3C00C000", got)
	}
	check32(t, "f16→f32 min denorm", F16ToF32(0x0001), 0x33800000)
	check32(t, "f16→f32 -denorm", F16ToF32(0x8200), 0xB8000000) // -512·2^-24 = -2^-15: exponent field 112
	check32(t, "f16→f32 max", F16ToF32(0x7BFF), 0x477FE000)
	check32(t, "f16→f32 -inf", F16ToF32(0xFC00), 0xFF800000)
	check32(t, "f16→f32 nan", F16ToF32(0x7E01), 0x7FC02000)
	check32(t, "f16→f32 -0", F16ToF32(0x8000), 0x80000000)
}

func TestCvtFloatFloat(t *testing.T) {
	third := f64(0x3FD5555555555555)
	check32(t, "f32.f64 1/3 rn", CvtF32F64(third, rnd(RN)), 0x3EAAAAAB)
	check32(t, "f32.f64 1/3 rz", CvtF32F64(third, rnd(RZ)), 0x3EAAAAAA)
	check32(t, "f32.f64 -1/3 rm", CvtF32F64(-third, rnd(RM)), 0xBEAAAAAB)
	check32(t, "f32.f64 1e39 rn", CvtF32F64(1e39, rnd(RN)), 0x7F800000)
	check32(t, "f32.f64 1e39 rz", CvtF32F64(1e39, rnd(RZ)), 0x7F7FFFFF)
	check32(t, "f32.f64 2^-150 rn", CvtF32F64(0x1p-150, rnd(RN)), 0x00000000)
	check32(t, "f32.f64 2^-150 rp", CvtF32F64(0x1p-150, rnd(RP)), 0x00000001)
	check32(t, "f32.f64 2^-140 ftz", CvtF32F64(0x1p-140, Mode{FTZ: true}), 0x00000000)
	check32(t, "f32.f64 sat", CvtF32F64(3, Mode{Sat: true}), 0x3F800000)
	check32(t, "f32.f64 nan", CvtF32F64(math.NaN(), rnd(RN)), CanonicalNaN32)
	check64(t, "f64.f32 denorm", CvtF64F32(f32(1), false), 0x36A0000000000000) // 2^-149
	check64(t, "f64.f32 denorm ftz", CvtF64F32(f32(0x80000001), true), 0x8000000000000000)
	check64(t, "f64.f32 nan", CvtF64F32(f32(0x7FC00001), false), CanonicalNaN64)

	// cvt.sat.f32.f32 (__saturatef).
	check32(t, "sat 1.5", CvtF32F32(1.5, Mode{Sat: true}), 0x3F800000)
	check32(t, "sat -0.5", CvtF32F32(-0.5, Mode{Sat: true}), 0x00000000)
	check32(t, "sat -0", CvtF32F32(f32(0x80000000), Mode{Sat: true}), 0x00000000)
	check32(t, "sat NaN", CvtF32F32(f32(0xFFC00000), Mode{Sat: true}), 0x00000000)
	check32(t, "sat 0.5", CvtF32F32(0.5, Mode{Sat: true}), 0x3F000000)
	check32(t, "ftz denorm", CvtF32F32(f32(0x80000001), Mode{FTZ: true}), 0x80000000)

	// Integer rounding in floating point.
	for _, c := range []struct {
		in   float32
		r    Rounding
		want uint32
	}{
		{2.5, RN, 0x40000000}, {3.5, RN, 0x40800000}, {-2.5, RM, 0xC0400000},
		{-2.5, RZ, 0xC0000000}, {2.5, RP, 0x40400000}, {-0.3, RN, 0x80000000},
		{-0.3, RP, 0x80000000}, {0.3, RM, 0x00000000},
	} {
		check32(t, "cvt.rXi.f32.f32", RoundIntF32(c.in, c.r, Mode{}), c.want)
	}
	check32(t, "cvt.rpi.ftz denorm", RoundIntF32(f32(1), RP, Mode{FTZ: true}), 0x00000000)
	check32(t, "cvt.rpi denorm", RoundIntF32(f32(1), RP, Mode{}), 0x3F800000)
	check64(t, "cvt.rni.f64.f64", RoundIntF64(-0.5, RN), 0x8000000000000000)
}

func TestCvtFloatInt(t *testing.T) {
	s := []struct {
		in    float64
		src64 bool
		r     Rounding
		bits  uint
		want  int64
	}{
		{2.5, false, RN, 32, 2}, {-2.5, false, RN, 32, -2}, {3.5, false, RN, 32, 4},
		{-0.5, false, RM, 32, -1}, {0.5, false, RP, 32, 1}, {-1.9, false, RZ, 32, -1},
		{0x1p-149, false, RP, 32, 1}, // a subnormal rounds up to 1 without .ftz
		{1e10, false, RZ, 32, math.MaxInt32}, {-1e10, false, RZ, 32, math.MinInt32},
		{300, false, RN, 8, 127}, {-300, false, RN, 8, -128}, {-128.4, false, RN, 8, -128},
		{0x1p63, true, RN, 64, math.MaxInt64}, {-0x1p63, true, RN, 64, math.MinInt64},
		{math.Inf(1), false, RN, 16, math.MaxInt16},
		// NaN: 0 for an f32 source into ≤32 bits, otherwise MinInt of the destination.
		{math.NaN(), false, RN, 32, 0}, {math.NaN(), true, RN, 32, math.MinInt32},
		{math.NaN(), false, RN, 64, math.MinInt64},
	}
	for _, c := range s {
		if got := CvtFToS(c.in, c.src64, c.r, c.bits); got != c.want {
			t.Errorf("cvt.%vi.s%d(%g, f64=%v) = %d, want %d", c.r, c.bits, c.in, c.src64, got, c.want)
		}
	}
	u := []struct {
		in    float64
		src64 bool
		r     Rounding
		bits  uint
		want  uint64
	}{
		{-1, false, RZ, 32, 0}, {5e9, false, RZ, 32, math.MaxUint32}, {2.5, false, RN, 32, 2},
		{255.5, false, RN, 8, 255}, {-0.7, false, RP, 16, 0}, {0x1p64, true, RN, 64, math.MaxUint64},
		{math.NaN(), false, RN, 32, 0}, {math.NaN(), true, RN, 32, 0x80000000},
		{math.NaN(), false, RN, 64, 1 << 63},
	}
	for _, c := range u {
		if got := CvtFToU(c.in, c.src64, c.r, c.bits); got != c.want {
			t.Errorf("cvt.%vi.u%d(%g, f64=%v) = %#x, want %#x", c.r, c.bits, c.in, c.src64, got, c.want)
		}
	}
}

func TestCvtIntFloat(t *testing.T) {
	// 2^24+1 is the midpoint of 2^24 (0x4B800000, even) and 2^24+2.
	check32(t, "s32→f32 2^24+1 rn", CvtSToF32(1<<24+1, RN), 0x4B800000)
	check32(t, "s32→f32 2^24+1 rp", CvtSToF32(1<<24+1, RP), 0x4B800001)
	// 2^24+3 is the midpoint of 2^24+2 (odd significand) and 2^24+4.
	check32(t, "s32→f32 2^24+3 rn", CvtSToF32(1<<24+3, RN), 0x4B800002)
	check32(t, "s32→f32 -(2^24+1) rm", CvtSToF32(-(1<<24+1), RM), 0xCB800001)
	check32(t, "s32→f32 -(2^24+1) rz", CvtSToF32(-(1<<24+1), RZ), 0xCB800000)
	check32(t, "s64→f32 MaxInt64 rn", CvtSToF32(math.MaxInt64, RN), 0x5F000000)
	check32(t, "s64→f32 MaxInt64 rz", CvtSToF32(math.MaxInt64, RZ), 0x5EFFFFFF)
	check32(t, "s64→f32 MinInt64", CvtSToF32(math.MinInt64, RZ), 0xDF000000)
	check32(t, "u64→f32 max rn", CvtUToF32(math.MaxUint64, RN), 0x5F800000)
	check32(t, "u64→f32 max rz", CvtUToF32(math.MaxUint64, RZ), 0x5F7FFFFF)
	check32(t, "s32→f32 0", CvtSToF32(0, RM), 0x00000000)
	check64(t, "s64→f64 2^53+1 rn", CvtSToF64(1<<53+1, RN), 0x4340000000000000)
	check64(t, "s64→f64 2^53+1 rp", CvtSToF64(1<<53+1, RP), 0x4340000000000001)
	check64(t, "u64→f64 max rz", CvtUToF64(math.MaxUint64, RZ), 0x43EFFFFFFFFFFFFF)
	check64(t, "u64→f64 max rn", CvtUToF64(math.MaxUint64, RN), 0x43F0000000000000)
}

func TestCvtInt(t *testing.T) {
	cases := []struct {
		x       uint64
		sb      uint
		ss      bool
		db      uint
		ds, sat bool
		want    uint64
	}{
		{0xFFFFFFFF, 32, true, 64, true, false, 0xFFFFFFFFFFFFFFFF}, // cvt.s64.s32 sign-extends
		{0xFFFFFFFF, 32, false, 64, false, false, 0xFFFFFFFF},       // cvt.u64.u32 zero-extends
		{0x123456789, 64, false, 32, false, false, 0x23456789},      // cvt.u32.u64 truncates
		{0x80, 8, true, 32, false, false, 0xFFFFFF80},               // cvt.u32.s8 sign-extends by source
		{300, 32, true, 8, true, true, 0x7F},
		{uint64(0xFFFFFED4), 32, true, 8, true, true, 0x80}, // -300 → -128
		{uint64(0xFFFFFFFFFFFFFFFB), 64, true, 32, false, true, 0},
		{0xFFFFFFFFFFFFFFFF, 64, false, 32, true, true, 0x7FFFFFFF},
		{0xFFFFFFFF, 32, true, 64, false, true, 0},               // -1 → u64 saturates to 0
		{1 << 63, 64, false, 64, true, true, 0x7FFFFFFFFFFFFFFF}, // u64 2^63 → s64 max
		{0xFFFFFFFFFFFFFFFF, 64, false, 64, false, true, math.MaxUint64},
	}
	for _, c := range cases {
		if got := CvtInt(c.x, c.sb, c.ss, c.db, c.ds, c.sat); got != c.want {
			t.Errorf("CvtInt(%#x, %d/%v → %d/%v sat=%v) = %#x, want %#x", c.x, c.sb, c.ss, c.db, c.ds, c.sat, got, c.want)
		}
	}
}
