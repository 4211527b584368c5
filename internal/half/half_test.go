package half

import (
	"math"
	"testing"
)

func TestBF16RoundTripAllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if f != f {
			if g := BF16ToF32(F32ToBF16(f)); g == g {
				t.Fatalf("NaN %#04x did not stay NaN", h)
			}
			continue
		}
		if got := F32ToBF16(f); got != h {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, f, got)
		}
	}
}

func TestF16RoundTripAllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		if f != f {
			continue
		}
		if got := F32ToF16(f); got != h {
			t.Fatalf("f16 %#04x -> %v -> %#04x", h, f, got)
		}
	}
}

func TestRoundingTiesToEven(t *testing.T) {
	// 1 + 2^-8 lies exactly between two bf16 values (1 and 1+2^-7); even is 1.
	if got := F32ToBF16(1 + 1.0/256); got != 0x3f80 {
		t.Fatalf("bf16 tie rounded to %#04x, want 0x3f80", got)
	}
	// 1 + 3*2^-8 lies between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
	if got := F32ToBF16(1 + 3.0/256); got != 0x3f82 {
		t.Fatalf("bf16 tie rounded to %#04x, want 0x3f82", got)
	}
	// binary16: 1 + 2^-11 is a tie between 1 and 1+2^-10; even is 1.
	if got := F32ToF16(1 + 1.0/2048); got != 0x3c00 {
		t.Fatalf("f16 tie rounded to %#04x, want 0x3c00", got)
	}
	if got := F32ToF16(70000); got != 0x7c00 {
		t.Fatalf("f16 overflow gave %#04x, want +Inf", got)
	}
	if got := F16ToF32(0x0001); got != float32(math.Ldexp(1, -24)) {
		t.Fatalf("smallest f16 subnormal = %v", got)
	}
}
