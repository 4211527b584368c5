package train

import (
	"fmt"

	"purpcode/dist"
	"purpcode/model/qwen2"
	"purpcode/plan"
)

// Group is a rank's place in a run of TP×DP ranks. The TP ranks of a group
// hold the shards of one model replica (qwen2.Model.Shard) and see the same
// data; the DP replicas split each step's data and sum their gradients.
// Ranks are numbered TP-innermost, as Megatron does (world rank =
// dp*TP + tp), so a replica's shards sit on neighbouring GPUs of one node.
// The zero value is a single process.
type Group struct {
	DP DP
	// TP is the tensor-parallel group; nil without tensor parallelism.
	TP dist.Comm
	// Split is the TP layout (see TPSplit); nil when TP is nil.
	Split qwen2.SplitFunc
}

// TPSize is the number of tensor-parallel ranks (1 without TP).
func (g Group) TPSize() int {
	if g.TP == nil {
		return 1
	}
	return g.TP.Size()
}

// TPRank is this rank's index in its tensor-parallel group.
func (g Group) TPRank() int {
	if g.TP == nil {
		return 0
	}
	return g.TP.Rank()
}

// Leader reports whether this rank writes the run's shared files
// (metrics, manifests): TP rank 0 of DP rank 0.
func (g Group) Leader() bool { return g.DP.Leader() && g.TPRank() == 0 }

// Layout describes the group for logs and manifests, e.g. "tp 2 x dp 2".
func (g Group) Layout() string { return fmt.Sprintf("tp %d x dp %d", g.TPSize(), g.DP.Size()) }

// TPSplit is plan's Megatron layout of cfg over tp ranks as the model's
// SplitFunc.
func TPSplit(cfg *qwen2.Config, tp int) (qwen2.SplitFunc, error) {
	l, err := plan.NewLayout(cfg, tp)
	if err != nil {
		return nil, err
	}
	return func(name string, shape []int, rank int) (int, int, int, error) {
		s, err := l.Shard(name, shape, rank)
		return s.Dim, s.Lo, s.Hi, err
	}, nil
}
