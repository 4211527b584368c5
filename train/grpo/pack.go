package grpo

import (
	"math"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// sequence is one sampled response with its prompt, as trained on.
type sequence struct {
	ids       []int32 // prompt then response tokens
	promptLen int
	adv       float64
	// Per response token: log-prob under the sampling policy (recomputed
	// by the trainer before any update) and under the reference.
	oldLogp, refLogp []float32
	// rollLogp is the rollout engine's log-prob of each response token
	// (temperature 1, unfiltered), for the rollout/trainer gap metric.
	rollLogp []float32
}

func (s *sequence) respLen() int { return len(s.ids) - s.promptLen }

// rolloutGap is |trainer - rollout| log-prob of response token ti, whose
// trainer log-prob is lp (0 when the rollout's log-probs are missing).
func (s *sequence) rolloutGap(ti int, lp float64) float64 {
	if len(s.rollLogp) != s.respLen() {
		return 0
	}
	return math.Abs(lp - float64(s.rollLogp[ti]))
}

// packedBatch is a micro-batch of packed rows and, for each flattened
// position, which sequence and response token its target belongs to.
type packedBatch struct {
	b   *qwen2.Batch
	seq []int32 // index into the step's sequences, -1 where no target
	tok []int32 // response token index predicted at the position
}

// pack lays sequences (first fit, in order) into rows of packLen tokens,
// rows per micro-batch, with positions restarting and attention blocked at
// sequence boundaries. Position p of a sequence predicts token p+1; targets
// exist only where that token belongs to the response.
func pack(seqs []*sequence, idx []int, packLen, rows int) []*packedBatch {
	var out []*packedBatch
	var cur *packedBatch
	row, col := rows, 0 // force a new batch first
	newBatch := func() {
		n := rows * packLen
		cur = &packedBatch{
			b:   &qwen2.Batch{B: rows, T: packLen, IDs: make([]int32, n), Pos: make([]int32, n), Seg: make([]int32, n), Targets: make([]int32, n)},
			seq: make([]int32, n), tok: make([]int32, n),
		}
		for i := range cur.b.Targets {
			cur.b.Targets[i] = engine.IgnoreIndex
			cur.seq[i] = -1
			cur.b.Seg[i] = -1
		}
		out = append(out, cur)
		row, col = 0, 0
	}
	for _, si := range idx {
		s := seqs[si]
		l := len(s.ids)
		if col+l > packLen {
			row, col = row+1, 0
		}
		if row >= rows {
			newBatch()
		}
		base := row*packLen + col
		for p := 0; p < l; p++ {
			cur.b.IDs[base+p] = s.ids[p]
			cur.b.Pos[base+p] = int32(p)
			cur.b.Seg[base+p] = int32(si)
			if p+1 < l && p+1 >= s.promptLen {
				cur.b.Targets[base+p] = s.ids[p+1]
				cur.seq[base+p] = int32(si)
				cur.tok[base+p] = int32(p + 1 - s.promptLen)
			}
		}
		col += l
	}
	return out
}
