package ptxmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMmaFragmentMaps(t *testing.T) {
	type rc struct{ r, c int }
	// Hand-evaluated from the ISA formulas (groupID = lane>>2, tig = lane%4).
	for _, c := range []struct {
		name         string
		lane, i      int
		f            func(int, int) (int, int)
		wantR, wantC int
	}{
		{"A lane0 a0", 0, 0, MmaAFragment, 0, 0},
		{"A lane0 a1", 0, 1, MmaAFragment, 0, 1},
		{"A lane5 a3", 5, 3, MmaAFragment, 9, 3},  // g=1,t=1: row g+8, col 2+1
		{"A lane6 a4", 6, 4, MmaAFragment, 1, 12}, // g=1,t=2: row g, col 4+0+8
		{"A lane31 a7", 31, 7, MmaAFragment, 15, 15},
		{"B lane5 b2", 5, 2, MmaBFragment, 10, 1},   // row 2+0+8, col g=1
		{"B lane30 b1", 30, 1, MmaBFragment, 5, 7},  // t=2: row 4+1, col 7
		{"C lane31 c3", 31, 3, MmaCFragment, 15, 7}, // row g+8, col 6+1
		{"C lane9 c0", 9, 0, MmaCFragment, 2, 2},
	} {
		r, col := c.f(c.lane, c.i)
		if r != c.wantR || col != c.wantC {
			t.Errorf("%s = (%d,%d), want (%d,%d)", c.name, r, col, c.wantR, c.wantC)
		}
	}
	// Each map is a bijection from (lane, element) onto the matrix.
	for _, m := range []struct {
		name          string
		f             func(int, int) (int, int)
		n, rows, cols int
	}{{"A", MmaAFragment, 8, 16, 16}, {"B", MmaBFragment, 4, 16, 8}, {"C", MmaCFragment, 4, 16, 8}} {
		seen := map[rc]bool{}
		for lane := range 32 {
			for i := range m.n {
				r, c := m.f(lane, i)
				if r < 0 || r >= m.rows || c < 0 || c >= m.cols || seen[rc{r, c}] {
					t.Fatalf("%s map: lane %d element %d → (%d,%d) out of range or repeated", m.name, lane, i, r, c)
				}
				seen[rc{r, c}] = true
			}
		}
	}
}

// packWarp distributes row-major A (16x16), B (16x8 as K x N) and C (16x8)
// over the warp using the ISA's register descriptions written out
// independently of the package's maps: A register j holds row g+8(j&1),
// columns 2t+8(j>>1) (low half) and +1 (high half); B register j holds rows
// 2t+8j and +1 of column g; C element i is row g+8(i>>1), column 2t+(i&1).
func packWarp(A [16][16]uint16, B [16][8]uint16, C [16][8]float32) (a [32][4]uint32, b [32][2]uint32, c [32][4]float32) {
	for lane := range 32 {
		g, tg := lane/4, lane%4
		for j := range 4 {
			r, k := g+8*(j&1), 2*tg+8*(j>>1)
			a[lane][j] = uint32(A[r][k]) | uint32(A[r][k+1])<<16
		}
		for j := range 2 {
			k := 2*tg + 8*j
			b[lane][j] = uint32(B[k][g]) | uint32(B[k+1][g])<<16
		}
		for i := range 4 {
			c[lane][i] = C[g+8*(i>>1)][2*tg+i&1]
		}
	}
	return a, b, c
}

func bf16Value(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }

func TestMmaIdentity(t *testing.T) {
	// A = I: D[r][n] = B[r][n] + C[r][n], checking the layouts end to end
	// without any rounding.
	var A [16][16]uint16
	var B [16][8]uint16
	var C [16][8]float32
	for r := range 16 {
		A[r][r] = 0x3F80 // 1.0
		for n := range 8 {
			B[r][n] = CvtBF16F32(float32(r*8+n), RN, false) // integers < 256 are exact in bf16
			C[r][n] = 0.5
		}
	}
	a, b, c := packWarp(A, B, C)
	d := MmaM16N8K16BF16(&a, &b, &c)
	for lane := range 32 {
		g, tg := lane/4, lane%4
		for i := range 4 {
			r, n := g+8*(i>>1), 2*tg+i&1
			if want := float32(r*8+n) + 0.5; d[lane][i] != want {
				t.Fatalf("lane %d d%d = %g, want D[%d][%d] = %g", lane, i, d[lane][i], r, n, want)
			}
		}
	}
}

func TestMmaRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Random bf16 with exponents in [-4, 4]: all 17 terms of a dot product
	// fit in 53 bits, so the float64 scalar product below is exact and the
	// comparison can be bitwise.
	randBF16 := func() uint16 {
		sign := uint16(rng.IntN(2)) << 15
		exp := uint16(127 + rng.IntN(9) - 4)
		return sign | exp<<7 | uint16(rng.IntN(128))
	}
	for trial := range 20 {
		var A [16][16]uint16
		var B [16][8]uint16
		var C [16][8]float32
		for r := range 16 {
			for k := range 16 {
				A[r][k] = randBF16()
			}
			for n := range 8 {
				C[r][n] = BF16ToF32(randBF16())
			}
		}
		for k := range 16 {
			for n := range 8 {
				B[k][n] = randBF16()
			}
		}
		a, b, c := packWarp(A, B, C)
		d := MmaM16N8K16BF16(&a, &b, &c)
		for lane := range 32 {
			g, tg := lane/4, lane%4
			for i := range 4 {
				r, n := g+8*(i>>1), 2*tg+i&1
				sum := float64(C[r][n])
				for k := range 16 {
					sum += bf16Value(A[r][k]) * bf16Value(B[k][n])
				}
				if want := float32(sum); d[lane][i] != want {
					t.Fatalf("trial %d lane %d d%d = %g, want D[%d][%d] = %g", trial, lane, i, d[lane][i], r, n, want)
				}
			}
		}
	}
}

func TestMmaNaN(t *testing.T) {
	var A [16][16]uint16
	var B [16][8]uint16
	var C [16][8]float32
	A[3][5] = 0x7FC1 // NaN in row 3
	for k := range 16 {
		B[k][2] = 0x3F80
	}
	C[0][0] = float32(math.Inf(1))
	a, b, c := packWarp(A, B, C)
	d := MmaM16N8K16BF16(&a, &b, &c)
	for lane := range 32 {
		for i := range 4 {
			r, n := MmaCFragment(lane, i)
			got := math.Float32bits(d[lane][i])
			switch {
			case r == 3: // NaN·x is NaN, also NaN·0
				if got != CanonicalNaN32 {
					t.Errorf("D[%d][%d] = %#x, want canonical NaN", r, n, got)
				}
			case r == 0 && n == 0:
				if got != 0x7F800000 {
					t.Errorf("D[0][0] = %#x, want +Inf", got)
				}
			case got != 0:
				t.Errorf("D[%d][%d] = %#x, want 0", r, n, got)
			}
		}
	}
}
