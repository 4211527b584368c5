package kernels

import "fmt"

// Tile sizes of attn_fwd_mma_d64/d128 (attention.cu's ATT_BR/ATT_BC/ATT_PAD).
const (
	AttnTileRows = 64
	attnTileCols = 64
	attnPad      = 8
)

// AttnMMASharedBytes is the dynamic shared memory attn_fwd_mma_d<D> needs;
// above 48 KiB the function must first be allowed it with
// SetMaxDynamicShared.
func AttnMMASharedBytes(d int) int { return (AttnTileRows + 2*attnTileCols) * (d + attnPad) * 2 }

// AttnMMAHeadDims are the head dimensions with a tensor-core forward
// kernel; others use attn_fwd_simt.
var AttnMMAHeadDims = []int{64, 128}

// AttnVarlen turns the engine's batch description (B rows of T tokens,
// optional per-token segment ids, a new segment wherever the id changes
// within a row; seg == nil means one sequence per row) into the kernels'
// variable-length form: cuSeqlens (nseq+1 token offsets into the flattened
// B*T tokens) and tiles (pairs of sequence index and first query position
// of each tileRows-row query tile, the grid of attn_fwd_mma). Token i
// attends to token j exactly when both are in one sequence and j <= i, the
// engine's rule.
func AttnVarlen(seg []int32, b, t, tileRows int) (cuSeqlens, tiles []int32) {
	if seg != nil && len(seg) != b*t {
		panic(fmt.Sprintf("kernels.AttnVarlen: %d segment ids for %d rows of %d tokens", len(seg), b, t))
	}
	if tileRows <= 0 {
		panic(fmt.Sprintf("kernels.AttnVarlen: tile rows %d", tileRows))
	}
	cuSeqlens = append(cuSeqlens, 0)
	for row := 0; row < b; row++ {
		for i := 1; i <= t; i++ {
			r := row*t + i
			if i == t || (seg != nil && seg[r] != seg[r-1]) {
				cuSeqlens = append(cuSeqlens, int32(r))
			}
		}
	}
	for s := 0; s+1 < len(cuSeqlens); s++ {
		n := int(cuSeqlens[s+1] - cuSeqlens[s])
		for q0 := 0; q0 < n; q0 += tileRows {
			tiles = append(tiles, int32(s), int32(q0))
		}
	}
	return cuSeqlens, tiles
}
