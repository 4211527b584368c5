package ptxmath

import "testing"

func TestMul(t *testing.T) {
	eq := func(name string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %#x, want %#x", name, got, want)
		}
	}
	// 0xFFFFFFFF² = 0xFFFFFFFE_00000001 (unsigned); as s32 it is (-1)² = 1.
	eq("mul.lo.u32", MulLo(0xFFFFFFFF, 0xFFFFFFFF, 32), 1)
	eq("mul.hi.u32", MulHi(0xFFFFFFFF, 0xFFFFFFFF, 32, false), 0xFFFFFFFE)
	eq("mul.hi.s32", MulHi(0xFFFFFFFF, 0xFFFFFFFF, 32, true), 0)
	eq("mul.hi.s32 -1*1", MulHi(0xFFFFFFFF, 1, 32, true), 0xFFFFFFFF)
	eq("mul.wide.s32 -2*3", MulWide(0xFFFFFFFE, 3, 32, true), 0xFFFFFFFFFFFFFFFA)
	eq("mul.wide.u32", MulWide(0xFFFFFFFF, 2, 32, false), 0x1FFFFFFFE)
	eq("mul.wide.s16", MulWide(0x8000, 0x8000, 16, true), 0x40000000) // (-2^15)² = 2^30
	// (2^64-1)² = 2^128 - 2^65 + 1: high word 0xFFFFFFFFFFFFFFFE.
	eq("mul.hi.u64", MulHi(^uint64(0), ^uint64(0), 64, false), 0xFFFFFFFFFFFFFFFE)
	// MinInt64 · -1 = 2^63: high word 0, low word 0x8000…
	eq("mul.hi.s64", MulHi(1<<63, ^uint64(0), 64, true), 0)
	eq("mul.hi.s64 neg", MulHi(1<<63, 2, 64, true), 0xFFFFFFFFFFFFFFFF) // -2^64
	eq("mul.lo.s64", MulLo(1<<63, ^uint64(0), 64), 1<<63)
	eq("mad.lo.s32", MadLo(0xFFFFFFFF, 3, 5, 32), 2)
	eq("mad.hi.u32", MadHi(0xFFFFFFFF, 0xFFFFFFFF, 3, 32, false), 0x1)
	eq("mad.wide.s32", MadWide(0xFFFFFFFF, 4, 10, 32, true), 6)
	// mul24: 0x00FFFFFF as .s32 low 24 bits is -1.
	eq("mul24.lo.s32", uint64(Mul24(0xFFFFFF, 2, false, true)), 0xFFFFFFFE)
	eq("mul24.lo.u32", uint64(Mul24(0xFFFFFF, 2, false, false)), 0x1FFFFFE)
	eq("mul24.hi.u32", uint64(Mul24(0xFFFFFF, 0xFFFFFF, true, false)), 0xFFFFFE00) // (2^24-1)² = 0xFFFFFE000001, bits 47..16
	eq("mul24.hi ignores top byte", uint64(Mul24(0xAB000002, 0xCD000003, true, false)), 0)
	if AddSatS32(0x7FFFFFFF, 1) != 0x7FFFFFFF || SubSatS32(-0x80000000, 1) != -0x80000000 || AddSatS32(-3, 1) != -2 {
		t.Error("sat add/sub wrong")
	}
}

func TestDivRem(t *testing.T) {
	q, ok := Div(uint64(0xFFFFFFF9), 2, 32, true) // -7 / 2 = -3
	if q != 0xFFFFFFFD || !ok {
		t.Errorf("div.s32 -7/2 = %#x %v", q, ok)
	}
	q, _ = Div(0x80000000, 0xFFFFFFFF, 32, true) // MinInt32 / -1 wraps
	if q != 0x80000000 {
		t.Errorf("div.s32 MinInt/-1 = %#x", q)
	}
	q, _ = Div(0xFFFFFFFF, 2, 32, false)
	if q != 0x7FFFFFFF {
		t.Errorf("div.u32 = %#x", q)
	}
	if _, ok := Div(5, 0, 32, false); ok {
		t.Error("division by zero not reported")
	}
	r, _ := Rem(uint64(0xFFFFFFF9), 2, 32, true) // -7 % 2 = -1
	if r != 0xFFFFFFFF {
		t.Errorf("rem.s32 = %#x", r)
	}
	if r, ok := Rem(7, 0, 64, false); ok || r != 7 {
		t.Error("rem by zero not reported")
	}
	if r, _ := Rem(17, 5, 64, false); r != 2 {
		t.Errorf("rem.u64 17%%5 = %d", r)
	}
}

func TestShift(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"shl 4", Shl(1, 4, 32), 16},
		{"shl 31", Shl(3, 31, 32), 0x80000000},
		{"shl 32 clamps", Shl(1, 32, 32), 0},
		{"shl huge", Shl(1, 0xFFFFFFFF, 64), 0},
		{"shl.b64 63", Shl(1, 63, 64), 1 << 63},
		{"shr.u32 33", Shr(0xFFFFFFFF, 33, 32, false), 0},
		{"shr.u32 4", Shr(0xF0, 4, 32, false), 0xF},
		{"shr.s32 4", Shr(0x80000000, 4, 32, true), 0xF8000000},
		{"shr.s32 40 clamps", Shr(0x80000000, 40, 32, true), 0xFFFFFFFF},
		{"shr.s32 pos 40", Shr(0x7FFFFFFF, 40, 32, true), 0},
		{"shr.s64 100", Shr(1<<63, 100, 64, true), ^uint64(0)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestBitField(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"bfe.u32", Bfe(0xF0, 4, 4, 32, false), 0xF},
		{"bfe.s32 sign", Bfe(0xF0, 4, 4, 32, true), 0xFFFFFFFF},
		{"bfe.s32 positive", Bfe(0x70, 4, 4, 32, true), 0x7},
		// pos 28, len 8 reaches past bit 31: bits 28..31 = 0x8, the rest
		// filled with a[31] = 1.
		{"bfe.s32 past msb", Bfe(0x80000000, 28, 8, 32, true), 0xFFFFFFF8},
		{"bfe.u32 past msb", Bfe(0x80000000, 28, 8, 32, false), 0x8},
		{"bfe len 0", Bfe(0xFFFFFFFF, 3, 0, 32, true), 0},
		{"bfe pos>msb signed", Bfe(0x80000000, 40, 4, 32, true), 0xFFFFFFFF},
		{"bfe uses low byte", Bfe(0xF0, 0x104, 0x204, 32, false), 0xF},
		{"bfe.u64", Bfe(0x123456789ABCDEF0, 32, 16, 64, false), 0x5678},
		{"bfi.b64 32,32", Bfi(0x11223344, 0x55667788, 32, 32, 64), 0x1122334455667788},
		{"bfi.b32", Bfi(0xA, 0xFFFFFFFF, 4, 4, 32), 0xFFFFFFAF},
		{"bfi.b32 clipped", Bfi(0xFF, 0, 28, 8, 32), 0xF0000000},
		{"bfi len 0", Bfi(0xFF, 0x1234, 0, 0, 32), 0x1234},
		{"bfi pos>msb", Bfi(0xFF, 0x1234, 40, 4, 32), 0x1234},
		{"brev.b32", Brev(1, 32), 0x80000000},
		{"brev.b64", Brev(0x3, 64), 0xC000000000000000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"popc.b32", Popc(0xF0F0, 32), 8},
		{"popc.b32 ignores high", Popc(0xFFFFFFFF00000001, 32), 1},
		{"popc.b64", Popc(^uint64(0), 64), 64},
		{"clz.b32 1", Clz(1, 32), 31},
		{"clz.b32 0", Clz(0, 32), 32},
		{"clz.b64", Clz(1<<40, 64), 23},
		{"bfind.u32", Bfind(0x10, 32, false, false), 4},
		{"bfind.u32 0", Bfind(0, 32, false, false), 0xFFFFFFFF},
		{"bfind.s32 -1", Bfind(0xFFFFFFFF, 32, true, false), 0xFFFFFFFF},
		{"bfind.s32 -16", Bfind(0xFFFFFFF0, 32, true, false), 3},
		{"bfind.shiftamt.u32", Bfind(0x10, 32, false, true), 27},
		{"bfind.shiftamt.u32 0", Bfind(0, 32, false, true), 0xFFFFFFFF},
		{"bfind.s64", Bfind(1<<40, 64, true, false), 40},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestPrmt(t *testing.T) {
	for _, c := range []struct {
		name    string
		a, b, c uint32
		mode    PrmtMode
		want    uint32
	}{
		// c = 4180 = 0x1054, as the kernels use it: d.b0 ← byte 4 (b.b0),
		// d.b1 ← byte 5 (b.b1), d.b2 ← byte 0 (a.b0), d.b3 ← byte 1 (a.b1):
		// {a.lo16, b.lo16}.
		{"kernel 0x1054", 0x11223344, 0x55667788, 4180, PrmtDefault, 0x33447788},
		{"identity", 0x11223344, 0x55667788, 0x3210, PrmtDefault, 0x11223344},
		{"b only", 0x11223344, 0x55667788, 0x7654, PrmtDefault, 0x55667788},
		// Selector 8 replicates the sign of byte 0 (0x80 → 0xFF, 0x7F → 0x00).
		{"sign 0x80", 0x00000080, 0, 0x0008, PrmtDefault, 0x808080FF},
		{"sign 0x7F", 0x0000007F, 0, 0x0008, PrmtDefault, 0x7F7F7F00},
		// Source bytes a = 33 22 11 00, b = 77 66 55 44 (byte 0 = 0x00 … byte 7 = 0x77).
		{"f4e 1", 0x33221100, 0x77665544, 1, PrmtF4E, 0x44332211},
		{"f4e 3", 0x33221100, 0x77665544, 3, PrmtF4E, 0x66554433},
		{"b4e 0", 0x33221100, 0x77665544, 0, PrmtB4E, 0x55667700},
		{"b4e 2", 0x33221100, 0x77665544, 2, PrmtB4E, 0x77001122},
		{"rc8 2", 0x33221100, 0x77665544, 2, PrmtRC8, 0x22222222},
		{"ecl 1", 0x33221100, 0x77665544, 1, PrmtECL, 0x33221111},
		{"ecr 2", 0x33221100, 0x77665544, 2, PrmtECR, 0x22221100},
		{"rc16 1", 0x33221100, 0x77665544, 1, PrmtRC16, 0x33223322},
		{"mode uses c[1:0] only", 0x33221100, 0x77665544, 0xFFFFFFFD, PrmtRC8, 0x11111111},
		{"unknown mode", 0x33221100, 0x77665544, 0, PrmtMode(99), 0},
	} {
		if got := Prmt(c.a, c.b, c.c, c.mode); got != c.want {
			t.Errorf("prmt %s = %#08x, want %#08x", c.name, got, c.want)
		}
	}
}

func TestParsePrmtMode(t *testing.T) {
	for s, want := range map[string]PrmtMode{"": PrmtDefault, ".f4e": PrmtF4E, "b4e": PrmtB4E, ".rc8": PrmtRC8, "ecl": PrmtECL, "ecr": PrmtECR, ".rc16": PrmtRC16} {
		if got, err := ParsePrmtMode(s); err != nil || got != want {
			t.Errorf("ParsePrmtMode(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParsePrmtMode("rc32"); err == nil {
		t.Error("ParsePrmtMode accepted rc32")
	}
}
