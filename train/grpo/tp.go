package grpo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/train"
	"purpcode/train/optim"
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

// group is the run's place in a TP×DP world, checked against the config:
// cfg.TensorParallel must be the size of o.TP (1 without one), and the
// model must split over it (plan's Megatron layout), both before anything
// is written.
func (o *Options) group(cfg *Config, mcfg *qwen2.Config) (train.Group, error) {
	g := train.Group{DP: o.DP, TP: o.TP}
	if g.TPSize() != cfg.TensorParallel {
		if o.TP == nil {
			return g, fmt.Errorf("tensor_parallel %d: this process is not in a tensor-parallel group; start a multiple of %d ranks (purpcode launch --nproc-per-node N, torchrun or srun)", cfg.TensorParallel, cfg.TensorParallel)
		}
		return g, fmt.Errorf("tensor_parallel %d, but the tensor-parallel group has %d ranks", cfg.TensorParallel, g.TPSize())
	}
	if o.TP == nil {
		return g, nil
	}
	split, err := train.TPSplit(mcfg, g.TPSize())
	if err != nil {
		return g, fmt.Errorf("tensor_parallel %d: %w", g.TPSize(), err)
	}
	g.Split = split
	return g, nil
}

// tpCtx detaches a TP collective from the run's cancellation, as train.DP
// does for DP's: an interrupt must end every rank at the same step, which
// the ranks agree on, rather than break the group mid-call (the Comm's own
// per-call timeout still bounds it).
func tpCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// barrier waits for every rank of g's world: all of a rank's DP group,
// then all of its TP group. A rank leaves the TP barrier only after every
// member of its TP group has left its own DP barrier, which each left only
// once its whole DP group arrived, so every rank of the world has arrived.
func barrier(ctx context.Context, g train.Group) error {
	if err := g.DP.Barrier(ctx); err != nil {
		return err
	}
	if g.TP == nil {
		return nil
	}
	if err := g.TP.Barrier(tpCtx(ctx)); err != nil {
		return fmt.Errorf("tensor parallel: barrier: %w", err)
	}
	return nil
}

// countTrue returns, for each flag, on how many ranks of g's world it is
// true (the same answer on every rank): summed over the DP group, then
// over the TP group, which covers every rank once (TP-innermost grid).
func countTrue(ctx context.Context, g train.Group, flags ...bool) ([]int, error) {
	buf := make([]float64, len(flags))
	for i, f := range flags {
		if f {
			buf[i] = 1
		}
	}
	if err := g.DP.SumF64Slice(ctx, buf); err != nil {
		return nil, err
	}
	if g.TP != nil {
		if err := g.TP.AllReduceSumF64(tpCtx(ctx), buf); err != nil {
			return nil, fmt.Errorf("tensor parallel: all-reduce: %w", err)
		}
	}
	out := make([]int, len(buf))
	for i, v := range buf {
		out[i] = int(v)
	}
	return out, nil
}

// anyTrue reports whether b is true on any rank of g's world.
func anyTrue(ctx context.Context, g train.Group, b bool) (bool, error) {
	n, err := countTrue(ctx, g, b)
	if err != nil {
		return false, err
	}
	return n[0] > 0, nil
}

// clipTo scales g so that its norm, given (a shard's gradient is a slice
// of the model's, whose norm its own does not tell), is at most maxNorm,
// with optim.ClipGradNorm's rule (0: no clipping).
func clipTo(be engine.Backend, g *engine.Tensor, norm, maxNorm float64) {
	if maxNorm <= 0 {
		return
	}
	if coef := maxNorm / (norm + 1e-6); coef < 1 {
		be.Scale(g, float32(coef))
	}
}

// clipGrad clips the policy's gradient to cfg.Clip by the whole model's
// norm and returns that norm (before clipping). On a shard the norm is a
// TP collective; its failure is returned.
func (r *runner) clipGrad() (float64, error) {
	if r.group.TP == nil {
		return optim.ClipGradNorm(r.m.Backend(), r.m.P.Weights.Grad, r.cfg.Clip), nil
	}
	norm, err := r.m.GradNorm()
	if err != nil {
		return 0, fmt.Errorf("gradient norm: %w", err)
	}
	clipTo(r.m.Backend(), r.m.P.Weights.Grad, norm, r.cfg.Clip)
	return norm, nil
}

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
