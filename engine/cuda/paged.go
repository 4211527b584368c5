package cuda

import (
	"fmt"
	"math"

	"purpcode/engine"
	"purpcode/kernels"
)

// pagedArgs uploads a step's block tables, sequence ids and positions.
// With skip, skipped rows get sequence id -1, which paged_attn leaves alone.
func (b *Backend) pagedArgs(p engine.PagedRows, skip bool) (tables, seq, pos kernels.DevicePtr) {
	s := p.Seq
	if skip && p.Skip != nil {
		s = make([]int32, len(p.Seq))
		for r, id := range p.Seq {
			s[r] = id
			if p.Skip[r] {
				s[r] = -1
			}
		}
	}
	return b.ints("paged.tables", p.Tables), b.ints("paged.seq", s), b.ints("paged.pos", p.Pos)
}

func checkPaged(op string, p engine.PagedRows, rows int, caches ...*engine.Tensor) {
	if len(p.Seq) != rows || len(p.Pos) != rows || (p.Skip != nil && len(p.Skip) != rows) || p.Hk <= 0 || p.Hq%p.Hk != 0 || p.BlockSize <= 0 || p.D > 256 {
		panic(fmt.Sprintf("cuda.%s: %d rows with %d sequence ids, %d positions, heads %d/%d of %d, block %d", op, rows, len(p.Seq), len(p.Pos), p.Hq, p.Hk, p.D, p.BlockSize))
	}
	for _, c := range caches {
		mustType(op, "cache", c, engine.BF16)
	}
	blocks := caches[0].Numel() / (p.Hk * p.BlockSize * p.D)
	for r := range rows {
		s, pos := int(p.Seq[r]), int(p.Pos[r])
		if s < 0 || (s+1)*p.MaxBlocks > len(p.Tables) || pos < 0 || pos/p.BlockSize >= p.MaxBlocks {
			panic(fmt.Sprintf("cuda.%s: row %d of sequence %d at position %d outside the block tables", op, r, s, pos))
		}
		if blk := p.Tables[s*p.MaxBlocks+pos/p.BlockSize]; blk < 0 || int(blk) >= blocks {
			panic(fmt.Sprintf("cuda.%s: row %d uses block %d of a %d-block cache", op, r, blk, blocks))
		}
	}
}

// pagedOperands checks a paged op's cache layers and its two (rows, heads*D)
// bf16 row operands x and y (k and v, or q and out) and returns rows and
// the row width.
func pagedOperands(op string, p engine.PagedRows, heads int, kc, vc, x, y *engine.Tensor) (rows, width int) {
	mustDev(op, kc, vc, x, y)
	rows, width = rowsCols(x)
	checkPaged(op, p, rows, kc, vc)
	if width != heads*p.D || y.Numel() != x.Numel() {
		panic(fmt.Sprintf("cuda.%s: operands %s and %s for %d heads of %d", op, engine.ShapeString(x.Shape), engine.ShapeString(y.Shape), heads, p.D))
	}
	mustType(op, "row operand", x, engine.BF16)
	mustType(op, "row operand", y, engine.BF16)
	return rows, width
}

// PagedKVWrite stores each row's key and value (bf16, after RoPE) in the
// cache layer at its sequence's position.
func (b *Backend) PagedKVWrite(kc, vc, k, v *engine.Tensor, p engine.PagedRows) {
	rows, w := pagedOperands("PagedKVWrite", p, p.Hk, kc, vc, k, v)
	tables, seq, pos := b.pagedArgs(p, false)
	b.launch("paged_kv_write", grid1(rows, 1), block(128), kc.Dev, vc.Dev, k.Dev, v.Dev, int64(w),
		tables, int32(p.MaxBlocks), seq, pos, int32(rows), int32(p.Hk), int32(p.D), int32(p.BlockSize))
}

// PagedAttention runs paged_attn over the rows not skipped.
func (b *Backend) PagedAttention(out, q, kc, vc *engine.Tensor, p engine.PagedRows) {
	rows, w := pagedOperands("PagedAttention", p, p.Hq, kc, vc, q, out)
	tables, seq, pos := b.pagedArgs(p, true)
	grid := grid1(rows, 1)
	grid.Y = uint32(p.Hq)
	b.launch("paged_attn", grid, block(128), out.Dev, int64(w), q.Dev, int64(w), kc.Dev, vc.Dev,
		tables, int32(p.MaxBlocks), seq, pos, int32(rows), int32(p.Hq), int32(p.Hk), int32(p.D), int32(p.BlockSize),
		float32(1/math.Sqrt(float64(p.D))))
}

// Copy copies src into dst, bf16 rows through the gather kernel (the
// context has no device-to-device memcpy).
func (b *Backend) Copy(dst, src *engine.Tensor) {
	mustDev("Copy", dst, src)
	if dst.Numel() != src.Numel() || dst.DType != src.DType {
		panic(fmt.Sprintf("cuda.Copy: %s %s into %s %s", src.DType, engine.ShapeString(src.Shape), dst.DType, engine.ShapeString(dst.Shape)))
	}
	// As bf16 halves (an fp32 value is two): bit-exact for either dtype.
	halves := src.Numel() * src.DType.Size() / 2
	rows, cols := halves, 1
	if halves%64 == 0 {
		rows, cols = halves/64, 64
	}
	idx := make([]int32, rows)
	for i := range idx {
		idx[i] = int32(i)
	}
	d := &engine.Tensor{DType: engine.BF16, Shape: []int{rows, cols}, Dev: dst.Dev}
	s := &engine.Tensor{DType: engine.BF16, Shape: []int{rows, cols}, Dev: src.Dev}
	b.gather("Copy", "copy.rows", d, s, idx, cols, rows)
}
