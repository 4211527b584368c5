package data

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"purpcode/model/qwen2"
)

// Permutation returns a uniformly shuffled 0..n-1 drawn from seed with
// PCG and an explicit Fisher-Yates shuffle, so the order stays the same
// across Go releases (math/rand's Shuffle makes no such promise).
func Permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := rand.NewPCG(seed, 0x5851f42d4c957f2d)
	for i := n - 1; i > 0; i-- {
		j := int(boundedRand(r, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// boundedRand is an unbiased uniform value in [0, n) (Lemire's method).
func boundedRand(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// Layout fixes the micro-batch shape and how rows are placed.
type Layout struct {
	B, T int
	Pack bool
	Pad  int32 // token id of padding positions
}

// Epoch is one pass over a dataset in a fixed order, cut into sequences
// and micro-batches.
type Epoch struct {
	d      *Dataset
	lay    Layout
	seqs   [][]int32 // row indices per sequence
	tokens int       // non-padding tokens
}

// NewEpoch plans a pass over d visiting rows in order (nil = file order).
func NewEpoch(d *Dataset, order []int, lay Layout) *Epoch {
	if lay.B <= 0 || lay.T <= 0 {
		panic(fmt.Sprintf("data.NewEpoch: micro-batch shape (%d, %d)", lay.B, lay.T))
	}
	if order == nil {
		order = make([]int, len(d.Rows))
		for i := range order {
			order[i] = i
		}
	}
	e := &Epoch{d: d, lay: lay}
	var cur []int32
	used := 0
	for _, ri := range order {
		n := len(d.Rows[ri].IDs)
		if n > lay.T {
			panic(fmt.Sprintf("data.NewEpoch: row %s has %d tokens for sequences of %d", d.Rows[ri].Source, n, lay.T))
		}
		e.tokens += n
		if len(cur) > 0 && (!lay.Pack || used+n > lay.T) {
			e.seqs = append(e.seqs, cur)
			cur, used = nil, 0
		}
		cur = append(cur, int32(ri))
		used += n
	}
	if len(cur) > 0 {
		e.seqs = append(e.seqs, cur)
	}
	return e
}

// Sequences is the number of (packed) sequences of the epoch.
func (e *Epoch) Sequences() int { return len(e.seqs) }

// MicroBatches is the number of micro-batches of the epoch.
func (e *Epoch) MicroBatches() int { return (len(e.seqs) + e.lay.B - 1) / e.lay.B }

// Tokens is the number of non-padding tokens of the epoch.
func (e *Epoch) Tokens() int { return e.tokens }

// NewBatch allocates a batch of the layout's shape.
func (lay Layout) NewBatch() *qwen2.Batch {
	n := lay.B * lay.T
	return &qwen2.Batch{B: lay.B, T: lay.T, IDs: make([]int32, n), Pos: make([]int32, n), Seg: make([]int32, n), Targets: make([]int32, n)}
}

// Fill writes micro-batch mb into dst (from NewBatch) and returns its
// number of target tokens and of non-padding tokens.
func (e *Epoch) Fill(mb int, dst *qwen2.Batch) (targets, tokens int) {
	lay := e.lay
	if dst.B != lay.B || dst.T != lay.T || mb < 0 || mb >= e.MicroBatches() {
		panic(fmt.Sprintf("data.Epoch.Fill: micro-batch %d of %d into (%d, %d) for layout (%d, %d)", mb, e.MicroBatches(), dst.B, dst.T, lay.B, lay.T))
	}
	for b := 0; b < lay.B; b++ {
		off := b * lay.T
		ids, pos, seg, tgt := dst.IDs[off:off+lay.T], dst.Pos[off:off+lay.T], dst.Seg[off:off+lay.T], dst.Targets[off:off+lay.T]
		t := 0
		var s int32
		if si := mb*lay.B + b; si < len(e.seqs) {
			for _, ri := range e.seqs[si] {
				row := &e.d.Rows[ri]
				n := len(row.IDs)
				copy(ids[t:], row.IDs)
				for i := 0; i < n; i++ {
					pos[t+i] = int32(i)
					seg[t+i] = s
					// Shift within the row only: the last token of a row
					// must not predict the first token of the next one.
					tgt[t+i] = IgnoreIndex
					if i+1 < n {
						tgt[t+i] = row.Labels[i+1]
					}
					if tgt[t+i] != IgnoreIndex {
						targets++
					}
				}
				t += n
				tokens += n
				s++
			}
		}
		// Padding is a segment of its own with positions from 0.
		for i := t; i < lay.T; i++ {
			ids[i], pos[i], seg[i], tgt[i] = lay.Pad, int32(i-t), s, IgnoreIndex
		}
	}
	return targets, tokens
}
