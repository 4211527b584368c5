package engine

import (
	"fmt"
	"math"
)

// PagedRows describes the new tokens of one inference step against a paged
// KV cache. A cache layer is a (blocks, Hk, BlockSize, D) tensor for keys
// and one for values (a (block, kv head) pair is one contiguous run that
// attention streams through). Sequence s owns the blocks
// Tables[s*MaxBlocks : (s+1)*MaxBlocks] (unused slots arbitrary); new token
// row r belongs to sequence Seq[r] and sits at position Pos[r].
type PagedRows struct {
	Hq, Hk, D, BlockSize int
	Tables               []int32
	MaxBlocks            int
	Seq, Pos             []int32
	// Skip, when not nil, marks rows PagedAttention leaves alone (a
	// prefill whose attention the caller computed another way).
	Skip []bool
}

func (p PagedRows) check(op string, rows int) {
	if len(p.Seq) != rows || len(p.Pos) != rows || (p.Skip != nil && len(p.Skip) != rows) || p.Hk <= 0 || p.Hq%p.Hk != 0 || p.BlockSize <= 0 {
		panic(fmt.Sprintf("engine.%s: %d rows with %d sequence ids, %d positions, %d skip flags, heads %d/%d, block %d",
			op, rows, len(p.Seq), len(p.Pos), len(p.Skip), p.Hq, p.Hk, p.BlockSize))
	}
	for r := range rows {
		s, pos := int(p.Seq[r]), int(p.Pos[r])
		if s < 0 || (s+1)*p.MaxBlocks > len(p.Tables) || pos < 0 || pos/p.BlockSize >= p.MaxBlocks {
			panic(fmt.Sprintf("engine.%s: row %d of sequence %d at position %d outside %d tables of %d blocks", op, r, s, pos, len(p.Tables)/max(p.MaxBlocks, 1), p.MaxBlocks))
		}
	}
}

// block returns row r's cache block for position pos.
func (p PagedRows) block(r, pos int) int {
	return int(p.Tables[int(p.Seq[r])*p.MaxBlocks+pos/p.BlockSize])
}

// PagedKVWrite stores each row's key and value (k, v: (rows, Hk*D), after
// RoPE) in the cache layer kc, vc at its sequence's position.
func (c *CPU) PagedKVWrite(kc, vc, k, v *Tensor, p PagedRows) {
	mustF32("PagedKVWrite", kc, vc, k, v)
	rows, w := rowsCols(k)
	p.check("PagedKVWrite", rows)
	if w != p.Hk*p.D || v.Numel() != k.Numel() {
		panic(fmt.Sprintf("engine.PagedKVWrite: k %s, v %s for %d kv heads of %d", ShapeString(k.Shape), ShapeString(v.Shape), p.Hk, p.D))
	}
	d, bs := p.D, p.BlockSize
	for r := range rows {
		pos := int(p.Pos[r])
		blk, slot := p.block(r, pos), pos%bs
		for h := 0; h < p.Hk; h++ {
			off := ((blk*p.Hk+h)*bs + slot) * d
			if off+d > len(kc.F32) {
				panic(fmt.Sprintf("engine.PagedKVWrite: block %d outside a cache of %d values", blk, len(kc.F32)))
			}
			copy(kc.F32[off:off+d], k.F32[r*w+h*d:r*w+(h+1)*d])
			copy(vc.F32[off:off+d], v.F32[r*w+h*d:r*w+(h+1)*d])
		}
	}
}

// PagedAttention computes causal attention for each row not skipped: the
// query heads of q (rows, Hq*D) attend to cached positions 0..Pos[r] of
// the row's sequence (its own key must be written already); out (rows,
// Hq*D). Scores are float32 dot products, the softmax normaliser is
// accumulated in float64; work is split over (row, kv head) items.
func (c *CPU) PagedAttention(out, q, kc, vc *Tensor, p PagedRows) {
	mustF32("PagedAttention", out, q, kc, vc)
	rows, _ := rowsCols(q)
	p.check("PagedAttention", rows)
	if q.Numel() != rows*p.Hq*p.D || out.Numel() != q.Numel() {
		panic(fmt.Sprintf("engine.PagedAttention: q %s, out %s for %d heads of %d", ShapeString(q.Shape), ShapeString(out.Shape), p.Hq, p.D))
	}
	maxCtx := 0
	for _, pos := range p.Pos {
		maxCtx = max(maxCtx, int(pos)+1)
	}
	group := p.Hq / p.Hk
	c.parallel(rows*p.Hk, 1, func(lo, hi int) {
		scores := make([]float32, group*maxCtx)
		pagedAttention(out.F32, q.F32, kc.F32, vc.F32, p, scores, lo, hi)
	})
}

// pagedAttention does PagedAttention's work items [lo, hi), item = row*Hk +
// kv head: all query heads of the group in one pass over the keys.
func pagedAttention(out, q, kc, vc []float32, p PagedRows, scores []float32, lo, hi int) {
	group := p.Hq / p.Hk
	ld := p.Hq * p.D
	d, bs := p.D, p.BlockSize
	scale := float32(1 / math.Sqrt(float64(d)))
	for item := lo; item < hi; item++ {
		row, hk := item/p.Hk, item%p.Hk
		if p.Skip != nil && p.Skip[row] {
			continue
		}
		ctx := int(p.Pos[row]) + 1
		for j0 := 0; j0 < ctx; j0 += bs {
			base := (p.block(row, j0)*p.Hk + hk) * bs * d
			nj := min(bs, ctx-j0)
			for t := 0; t < nj; t++ {
				kv := kc[base+t*d : base+(t+1)*d]
				for g := 0; g < group; g++ {
					h := hk*group + g
					scores[g*ctx+j0+t] = dotF32(q[row*ld+h*d:row*ld+(h+1)*d], kv) * scale
				}
			}
		}
		for g := 0; g < group; g++ {
			sc := scores[g*ctx : (g+1)*ctx]
			mx := sc[0]
			for _, x := range sc {
				mx = max(mx, x)
			}
			var sum float64
			for j, x := range sc {
				e := math.Exp(float64(x - mx))
				sum += e
				sc[j] = float32(e)
			}
			inv := float32(1 / sum)
			h := hk*group + g
			o := out[row*ld+h*d : row*ld+(h+1)*d]
			clear(o)
			for j0 := 0; j0 < ctx; j0 += bs {
				base := (p.block(row, j0)*p.Hk + hk) * bs * d
				nj := min(bs, ctx-j0)
				for t := 0; t < nj; t++ {
					axpyF32(o, vc[base+t*d:base+(t+1)*d], sc[j0+t]*inv)
				}
			}
		}
	}
}

// dotF32 is a float32 dot product with four independent partial sums.
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyF32 computes y += alpha*x.
func axpyF32(y, x []float32, alpha float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}

// Copy copies src into dst (same number of elements).
func (c *CPU) Copy(dst, src *Tensor) {
	mustF32("Copy", dst, src)
	if len(dst.F32) != len(src.F32) {
		panic(fmt.Sprintf("engine.Copy: %s into %s", ShapeString(src.Shape), ShapeString(dst.Shape)))
	}
	copy(dst.F32, src.F32)
}
