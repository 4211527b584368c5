package ptxmath

import "math"

// Shape of mma.sync.aligned.m16n8k16: D (16x8) = A (16x16) * B (16x8) + C.
const (
	MmaM = 16
	MmaN = 8
	MmaK = 16
)

// MmaAFragment maps element i (0..7) of a lane's A fragment for
// mma.m16n8k16 with .f16/.bf16 A in .row layout to its (row, col) in A.
// Element i is half i%2 (low half first) of the lane's A register i/2. Per
// the ISA, with groupID = lane>>2 and threadID_in_group = lane%4:
//
//	row = groupID      for i in {0,1,4,5}, groupID+8 otherwise
//	col = threadID_in_group*2 + (i&1), plus 8 for i >= 4
func MmaAFragment(lane, i int) (row, col int) {
	g, t := lane>>2, lane%4
	row = g
	if i&2 != 0 {
		row += 8
	}
	col = t*2 + i&1
	if i >= 4 {
		col += 8
	}
	return row, col
}

// MmaBFragment maps element i (0..3) of a lane's B fragment (.col layout,
// two .b32 registers of two .bf16 each, low half first) to its (row, col)
// in B (K x N): row = threadID_in_group*2 + (i&1), plus 8 for i >= 2;
// col = groupID.
func MmaBFragment(lane, i int) (row, col int) {
	g, t := lane>>2, lane%4
	row = t*2 + i&1
	if i >= 2 {
		row += 8
	}
	return row, g
}

// MmaCFragment maps element i (0..3) of a lane's C or D fragment (four .f32
// registers) to its (row, col): row = groupID, plus 8 for i >= 2; col =
// threadID_in_group*2 + (i&1).
func MmaCFragment(lane, i int) (row, col int) {
	g, t := lane>>2, lane%4
	row = g
	if i >= 2 {
		row += 8
	}
	return row, t*2 + i&1
}

// MmaM16N8K16BF16 implements
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c for a
// whole warp: a[lane] are the lane's four A registers (bf16x2 each), b[lane]
// its two B registers, c[lane] its four C values; the result is each lane's
// four D values, laid out by the fragment maps above.
//
// Each D element is C[r][n] + sum_k A[r][k]*B[k][n]: the bf16 products are
// exact in float64 and the 17 terms are summed in float64 (exact unless the
// terms span more than 53 bits of magnitude) before one rounding to fp32. The ISA does not specify the hardware's accumulation order or
// internal precision (tensor cores are known to truncate or use fewer
// alignment bits), so hardware results can differ in the last bits and
// kernels using mma are compared with a tolerance. NaN results are the
// canonical NaN; subnormal bf16 inputs are not flushed.
func MmaM16N8K16BF16(a *[32][4]uint32, b *[32][2]uint32, c *[32][4]float32) (d [32][4]float32) {
	var A [MmaM][MmaK]float64
	var B [MmaK][MmaN]float64
	var C [MmaM][MmaN]float64
	for lane := range 32 {
		for i := range 8 {
			r, k := MmaAFragment(lane, i)
			A[r][k] = float64(BF16ToF32(uint16(a[lane][i/2] >> (16 * (i % 2)))))
		}
		for i := range 4 {
			k, n := MmaBFragment(lane, i)
			B[k][n] = float64(BF16ToF32(uint16(b[lane][i/2] >> (16 * (i % 2)))))
		}
		for i := range 4 {
			r, n := MmaCFragment(lane, i)
			C[r][n] = float64(c[lane][i])
		}
	}
	for lane := range 32 {
		for i := range 4 {
			r, n := MmaCFragment(lane, i)
			s := C[r][n]
			for k := range MmaK {
				s += float64(A[r][k] * B[k][n]) // conversion keeps the product from fusing
			}
			v := float32(s)
			if math.IsNaN(s) {
				v = nan32()
			}
			d[lane][i] = v
		}
	}
	return d
}
