package grpo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"purpcode/oracle"
)

// Tensor parallelism in GRPO. The TP ranks of a replica hold the shards of
// one policy (and of the reference model) and do everything in lockstep:
// they draw the same prompts, roll out the same requests on their shards
// (generate's engine draws the same tokens on every shard, see its doc),
// and run the same packed rows through forward and backward, after which
// each holds the exact slice of the replica's gradient. So gradients are
// summed over DP only, and clipping uses the whole model's norm
// (qwen2.Model.GradNorm, one all-reduce over TP).
//
// Rewards are computed by TP rank 0 alone and broadcast to the others: an
// oracle may run code in the sandbox under a wall-clock timeout, or call a
// judge, so two ranks scoring the same sample could disagree, and ranks
// that disagree on a reward take different updates and different dynamic
// sampling decisions, which no later check would notice. Rank 0 sends a
// hash of its tokens with the rewards, so a rank whose rollouts diverged
// fails instead of training on another rank's rewards.

// errPeerFailed ends a rank whose own step went well when another rank's
// failed (not merely stopped): such a run stops without saving, as the
// failed rank does.
var errPeerFailed = errors.New("stopped: another rank of the group failed")

// tpCtx detaches a TP collective from the run's cancellation, as train.DP
// does for DP's: an interrupt must end every rank at the same step, which
// the ranks agree on, rather than break the group mid-call (the Comm's own
// per-call timeout still bounds it).
func tpCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// tokensHash is a digest of every sampled token of groups, in order: what
// the TP ranks compare to know they rolled out the same samples.
func tokensHash(groups []*group) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, g := range groups {
		for _, s := range g.samples {
			binary.LittleEndian.PutUint64(b[:], uint64(len(s.Tokens)))
			h.Write(b[:])
			for _, t := range s.Tokens {
				binary.LittleEndian.PutUint64(b[:], uint64(t))
				h.Write(b[:])
			}
		}
	}
	return h.Sum64()
}

// shareRewards gives every TP rank TP rank 0's rewards and format flags of
// groups (the same groups, rolled out in lockstep, on every rank), with
// the raw float64 bits; a rank whose sampled tokens differ from rank 0's
// fails.
func (r *runner) shareRewards(ctx context.Context, groups []*group) error {
	tp := r.group.TP
	n := 0
	for _, g := range groups {
		n += len(g.samples)
	}
	buf := make([]byte, 8+9*n)
	mine := tokensHash(groups)
	if tp.Rank() == 0 {
		binary.LittleEndian.PutUint64(buf, mine)
		off := 8
		for _, g := range groups {
			for j := range g.samples {
				binary.LittleEndian.PutUint64(buf[off:], math.Float64bits(g.rewards[j]))
				if g.scores[j].Format {
					buf[off+8] = 1
				}
				off += 9
			}
		}
	}
	if err := tp.Broadcast(tpCtx(ctx), buf, 0); err != nil {
		return fmt.Errorf("tensor parallel: rewards from rank 0: %w", err)
	}
	if tp.Rank() == 0 {
		return nil
	}
	if got := binary.LittleEndian.Uint64(buf); got != mine {
		return fmt.Errorf("tensor parallel rank %d: rolled out other tokens than rank 0 (hash %016x, rank 0 %016x): the shards diverged", tp.Rank(), mine, got)
	}
	off := 8
	for _, g := range groups {
		for j := range g.samples {
			rw := math.Float64frombits(binary.LittleEndian.Uint64(buf[off:]))
			g.scores[j] = oracle.Score{Reward: rw, Format: buf[off+8] == 1}
			g.rewards[j] = rw
			off += 9
		}
	}
	return nil
}
