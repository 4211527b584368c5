package ptxmath

import (
	"math"
	"testing"
)

func f32(b uint32) float32 { return math.Float32frombits(b) }
func f64(b uint64) float64 { return math.Float64frombits(b) }

// check32 compares bit patterns: NaN payloads and signed zeros matter.
func check32(t *testing.T, name string, got float32, want uint32) {
	t.Helper()
	if g := math.Float32bits(got); g != want {
		t.Errorf("%s = %#08x (%g), want %#08x (%g)", name, g, got, want, f32(want))
	}
}

func check64(t *testing.T, name string, got float64, want uint64) {
	t.Helper()
	if g := math.Float64bits(got); g != want {
		t.Errorf("%s = %#016x (%g), want %#016x (%g)", name, g, got, want, f64(want))
	}
}

var allModes = []Rounding{RN, RZ, RM, RP}
