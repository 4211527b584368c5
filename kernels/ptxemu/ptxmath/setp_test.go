package ptxmath

import (
	"math"
	"testing"
)

func TestCmpFloat(t *testing.T) {
	nan := math.NaN()
	negz := math.Copysign(0, -1)
	// Columns: result for (1,2), (2,2), (2,1), (NaN,1), (-0,+0).
	table := map[CmpOp][5]bool{
		EQ:  {false, true, false, false, true},
		NE:  {true, false, true, false, false},
		LT:  {true, false, false, false, false},
		LE:  {true, true, false, false, true},
		GT:  {false, false, true, false, false},
		GE:  {false, true, true, false, true},
		EQU: {false, true, false, true, true},
		NEU: {true, false, true, true, false},
		LTU: {true, false, false, true, false},
		LEU: {true, true, false, true, true},
		GTU: {false, false, true, true, false},
		GEU: {false, true, true, true, true},
		NUM: {true, true, true, false, true},
		NAN: {false, false, false, true, false},
	}
	pairs := [5][2]float64{{1, 2}, {2, 2}, {2, 1}, {nan, 1}, {negz, 0}}
	for op, want := range table {
		for i, p := range pairs {
			if got := CmpF64(op, p[0], p[1]); got != want[i] {
				t.Errorf("setp.%v.f64(%g, %g) = %v, want %v", op, p[0], p[1], got, want[i])
			}
			if got := CmpF32(op, float32(p[0]), float32(p[1]), false); got != want[i] {
				t.Errorf("setp.%v.f32(%g, %g) = %v, want %v", op, p[0], p[1], got, want[i])
			}
			// NaN in the second operand behaves the same.
			if i == 3 && CmpF64(op, 1, nan) != want[i] {
				t.Errorf("setp.%v.f64(1, NaN) differs from (NaN, 1)", op)
			}
		}
	}
	// .ftz: a subnormal equals zero after flushing, not before.
	if CmpF32(EQ, f32(1), 0, false) || !CmpF32(EQ, f32(1), 0, true) {
		t.Error("setp.eq.ftz.f32 does not flush the subnormal operand")
	}
	if CmpF64(LO, 1, 2) {
		t.Error("integer-only operator lo is true on floats")
	}
}

func TestCmpInt(t *testing.T) {
	// -1 < 1 signed, but 0xFFFFFFFF > 1 unsigned.
	if !CmpS(LT, -1, 1) || CmpU(LT, 0xFFFFFFFF, 1) || !CmpU(HI, 0xFFFFFFFF, 1) {
		t.Error("signed/unsigned compare of -1 and 1 wrong")
	}
	for _, c := range []struct {
		op   CmpOp
		a, b uint64
		want bool
	}{
		{LO, 1, 2, true}, {LS, 2, 2, true}, {HI, 2, 2, false}, {HS, 2, 2, true},
		{EQ, 5, 5, true}, {NE, 5, 5, false}, {GE, 1, 2, false}, {LEU, 3, 2, false},
		{NUM, 0, 0, true}, {NAN, 0, 0, false},
	} {
		if got := CmpU(c.op, c.a, c.b); got != c.want {
			t.Errorf("setp.%v.u32(%d, %d) = %v, want %v", c.op, c.a, c.b, got, c.want)
		}
	}
	if !CmpS(GE, 0, -5) || CmpS(GT, math.MinInt64, math.MaxInt64) || !CmpS(NE, 1, 0) || !CmpS(LE, -3, -3) || !CmpS(EQ, 7, 7) {
		t.Error("signed compare wrong")
	}
	for _, s := range []string{"eq", ".neu", "lo", "nan"} {
		op, err := ParseCmpOp(s)
		if err != nil || "."+op.String() != s && op.String() != s {
			t.Errorf("ParseCmpOp(%q) = %v, %v", s, op, err)
		}
	}
	if _, err := ParseCmpOp("lx"); err == nil {
		t.Error("ParseCmpOp accepted lx")
	}
	if !EQU.ValidForFloat() || LO.ValidForFloat() || !LO.ValidForInt(false) || LO.ValidForInt(true) || EQU.ValidForInt(true) || !GE.ValidForInt(true) {
		t.Error("operator validity wrong")
	}
}
