package plan

import (
	"errors"
	"fmt"
	"strings"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// lossChunk is how many token rows of lm-head logits the backends hold at
// once (engine/cuda's lossChunk and model/qwen2's tpLossChunk): a run's
// plan uses it where `purpcode plan` takes --logits-chunk.
const lossChunk = 256

// Run is one rank of an actual training run as the trainers set it up:
// what ForRun needs to size the arenas the backend will allocate.
type Run struct {
	TP, DP int // tensor- and data-parallel degrees (1: none)
	TPRank int // the rank's place in its TP group: uneven splits differ
	// DPRank is the rank's place in its DP group: ZeRO-1 chunks differ by
	// an element when DP does not divide the parameters.
	DPRank int
	// B, T is the micro-batch shape, the activation arena's.
	B, T      int
	Recompute bool // activation checkpointing (Trainer.Recompute, NewActsRecompute)
	// Optimizer is "adamw" (two fp32 moments; "" means adamw) or "sgd"
	// (one fp32 momentum buffer when Momentum, else none).
	Optimizer string
	Momentum  bool
	// ActDType is the backend's ActDType: BF16 on a device, whose weights
	// are an fp32 master plus a bf16 compute copy; F32 on the CPU, whose
	// one fp32 copy is both.
	ActDType engine.DType
	// ZeRO shards the fp32 master weights and the optimizer state over the
	// DP ranks (ZeRO-1): the rank holds its chunk dist.ChunkRange(params,
	// DP, DPRank), as optim.ZeRO1 and qwen2.Storage lay it out; without it
	// every rank holds them whole. Offload (with ZeRO) keeps the chunk of
	// both in host memory instead (HostPerRank).
	ZeRO, Offload bool
	// Reference is GRPO's frozen reference policy on the same backend,
	// inference-only (qwen2.LoadInference): its compute copy alone.
	Reference bool
}

// ForRun is the plan of one rank of a run of cfg: the same arithmetic as
// New with the run's actual shapes and dtypes, so that a backend that
// accounts memory (engine.MemoryReporter) can be checked against it with
// Compare. GPU and host capacities are not known here: Fit does not apply
// and KVBytes stays 0.
func ForRun(cfg *qwen2.Config, r Run) (*Plan, error) {
	if r.TP < 1 || r.DP < 1 || r.TPRank < 0 || r.TPRank >= r.TP || r.DPRank < 0 || r.DPRank >= r.DP {
		return nil, fmt.Errorf("plan: run of TP %d x DP %d at TP rank %d, DP rank %d: degrees must be at least 1, the rank below TP and the DP rank below DP", r.TP, r.DP, r.TPRank, r.DPRank)
	}
	if r.Offload && !r.ZeRO {
		return nil, fmt.Errorf("plan: optimizer offload without ZeRO-1 (the offloaded state is the rank's ZeRO-1 chunk)")
	}
	if r.B < 1 || r.T < 1 {
		return nil, fmt.Errorf("plan: micro-batch %d x %d: both must be positive", r.B, r.T)
	}
	if r.ActDType != engine.F32 && r.ActDType != engine.BF16 {
		return nil, fmt.Errorf("plan: activation dtype %s, want F32 (CPU) or BF16 (device)", r.ActDType)
	}
	var moments int64
	switch r.Optimizer {
	case "", "adamw":
		moments = 2
	case "sgd":
		if r.Momentum {
			moments = 1
		}
	default:
		return nil, fmt.Errorf("plan: optimizer %q, want adamw or sgd", r.Optimizer)
	}
	l, err := NewLayout(cfg, r.TP)
	if err != nil {
		return nil, err
	}
	n := int64(r.B) * int64(r.T)
	run := r
	p := &Plan{Layout: l, DP: r.DP, Run: &run, Opts: Options{
		GPUs: r.TP * r.DP, GPUsPerNode: 1, TP: r.TP, ActivationCheckpointing: r.Recompute, Reference: r.Reference, OptimizerOffload: r.Offload,
		GradBytes: fp32Bytes, Seq: r.T, MicroBatchTokens: int(n), LogitsChunkTokens: int(min(n, lossChunk)),
	}}
	if p.RankParams, p.Params, err = l.RankParams(r.TPRank); err != nil {
		return nil, err
	}
	// Master weights and moments: whole per rank unless ZeRO-1 shards them
	// into dist's chunks (the first RankParams%DP ranks hold one more).
	elems := p.RankParams
	if r.ZeRO {
		elems = p.RankParams / int64(r.DP)
		if int64(r.DPRank) < p.RankParams%int64(r.DP) {
			elems++
		}
	}
	p.ShardElems = elems
	act := int64(r.ActDType.Size())
	if r.ActDType == engine.F32 {
		// The CPU's fp32 weights are the master: no second copy.
		p.Weights = fp32Bytes * p.RankParams
	} else {
		p.Weights = bf16Bytes * p.RankParams
		p.Master = fp32Bytes * elems
	}
	p.Optimizer = moments * fp32Bytes * elems
	p.Grads = fp32Bytes * p.RankParams
	if r.Reference {
		p.RefPolicy = act * p.RankParams
	}
	p.ActFull, p.ActRecompute = l.activationsOf(n, act, r.TPRank)
	p.Activations = p.ActFull
	if r.Recompute {
		p.Activations = p.ActRecompute
	}
	p.Logits = l.logits(int64(p.Opts.LogitsChunkTokens), act, r.TPRank)
	// model/qwen2 keeps RoPE's cos and sin tables, fp32 (MaxPositions,
	// HeadDim/2) each, on the backend.
	p.Tables = int64(cfg.MaxPositions) * int64(cfg.HeadDim) * fp32Bytes
	p.GPUResident = p.Weights + p.Grads + p.RefPolicy + p.Activations + p.Logits + p.Tables
	if r.Offload {
		p.HostPerRank = p.Master + p.Optimizer
	} else {
		p.GPUResident += p.Master + p.Optimizer
	}
	p.KVBytesPerToken = 2 * int64(cfg.Layers) * int64(l.KVHeadsPerRank*cfg.HeadDim) * bf16Bytes
	return p, nil
}

// LogitsScratchFactor bounds the one planned category Compare cannot hold
// to the byte: the lm head's working set with the backend's scratch. The
// backend sizes its logits chunk by the rows that carry a target (at most
// the plan's positions) and keeps every scratch slot (GEMM column sums,
// norm partial sums, the attention's row sums, uploaded ids and targets)
// at its largest size, which the plan does not model; those are a few
// bytes per token and per kernel block, small next to the V-wide logits,
// so a factor of 2 either way still catches a missing, doubled or
// full-sequence logits buffer.
const LogitsScratchFactor = 2

// Check is one category of a plan against a backend's measured peak.
type Check struct {
	Name    string   // the plan's category
	Backend []string // the backend categories (engine.Mem*) summed into Measured
	Planned int64    // -1: not planned (reported only)
	// Measured is the sum of the backend categories' peaks.
	Measured int64
	// Exact categories must equal the plan to the byte; the others must
	// lie within Factor of it either way.
	Exact  bool
	Factor float64
	OK     bool
}

// String is the check as one clause of CheckLine.
func (c Check) String() string {
	switch {
	case c.Planned < 0:
		return fmt.Sprintf("%s %s (not planned)", c.Name, human(c.Measured))
	case c.Exact && c.OK:
		return fmt.Sprintf("%s %s = plan", c.Name, human(c.Measured))
	case c.Exact:
		return fmt.Sprintf("%s %s MISMATCH: plan %s (%+d bytes)", c.Name, human(c.Measured), human(c.Planned), c.Measured-c.Planned)
	}
	ratio := float64(c.Measured) / float64(max(c.Planned, 1))
	verdict := fmt.Sprintf("within x%g", c.Factor)
	if !c.OK {
		verdict = fmt.Sprintf("MISMATCH: outside x%g", c.Factor)
	}
	return fmt.Sprintf("%s %s vs plan %s (x%.2f, %s)", c.Name, human(c.Measured), human(c.Planned), ratio, verdict)
}

// Compare maps a backend's measured peaks (engine.MemoryReporter's
// PeakBytes, by engine.Mem* category) onto p, a plan from ForRun. The
// backend files the fp32 master and the bf16 compute copy (and a reference
// policy's weights) together under engine.MemWeights, so they are one
// check here. Weights, gradients, optimizer state and the activation arena
// are allocated once by shape and must match to the byte; the lm head's
// chunk with the backend's scratch and untagged allocations (the RoPE
// tables, model/qwen2's vocab-parallel chunk) within LogitsScratchFactor.
// Measured categories the plan does not size (the rollout KV cache and
// decode buffers) come last, reported only. It returns nil when measured
// is nil (a backend that does not account memory, such as the CPU).
func Compare(p *Plan, measured map[string]int64) []Check {
	if measured == nil {
		return nil
	}
	sum := func(cats ...string) int64 {
		var n int64
		for _, c := range cats {
			n += measured[c]
		}
		return n
	}
	exact := func(name string, planned int64, cats ...string) Check {
		m := sum(cats...)
		return Check{Name: name, Backend: cats, Planned: planned, Measured: m, Exact: true, OK: m == planned}
	}
	// With offload the master chunk and the moments are host memory: not
	// in the device's weights, no device optimizer state to check.
	master := p.Master
	if p.Opts.OptimizerOffload {
		master = 0
	}
	out := []Check{
		exact("weights+master", p.Weights+master+p.RefPolicy, engine.MemWeights),
		exact("grads", p.Grads, engine.MemGrads),
	}
	if !p.Opts.OptimizerOffload {
		out = append(out, exact("optimizer", p.Optimizer, engine.MemOptimizer))
	}
	out = append(out, exact("activations", p.Activations, engine.MemActivations))
	planned := p.Logits + p.Tables
	cats := []string{engine.MemScratch, engine.MemOther}
	m := sum(cats...)
	f := float64(LogitsScratchFactor)
	out = append(out, Check{Name: "logits+scratch", Backend: cats, Planned: planned, Measured: m, Factor: f,
		OK: float64(m) <= f*float64(planned) && f*float64(m) >= float64(planned)})
	for _, c := range []string{engine.MemKVCache, engine.MemDecode} {
		if measured[c] > 0 {
			out = append(out, Check{Name: c, Backend: []string{c}, Planned: -1, Measured: measured[c], OK: true})
		}
	}
	return out
}

// Verify is nil when every check holds, else an error naming the
// mismatches.
func Verify(checks []Check) error {
	var bad []string
	for _, c := range checks {
		if !c.OK {
			bad = append(bad, c.String())
		}
	}
	if bad == nil {
		return nil
	}
	return errors.New("memory plan vs measured: " + strings.Join(bad, "; "))
}

// CheckLine is the checks as the one line the trainers log after their
// first step ("measured after step 1: ...").
func CheckLine(checks []Check) string {
	if checks == nil {
		return "measured: the backend does not account memory"
	}
	parts := make([]string, len(checks))
	for i, c := range checks {
		parts[i] = c.String()
	}
	return "measured: " + strings.Join(parts, "; ")
}

// RunLine is a run's plan as the one line the trainers log at start.
func (p *Plan) RunLine() string {
	o := p.Opts
	ckpt := "no recompute"
	if o.ActivationCheckpointing {
		ckpt = "recompute per layer"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "plan: TP %d x DP %d, micro-batch %d tokens, %s: weights %s, master %s, grads %s, optimizer %s",
		o.TP, p.DP, o.MicroBatchTokens, ckpt, human(p.Weights), human(p.Master), human(p.Grads), human(p.Optimizer))
	if p.RefPolicy > 0 {
		fmt.Fprintf(&b, ", reference %s", human(p.RefPolicy))
	}
	fmt.Fprintf(&b, ", activations %s, logits %s, tables %s; total %s", human(p.Activations), human(p.Logits), human(p.Tables), human(p.GPUResident))
	return b.String()
}

// human formats bytes in decimal MB below 1 GB, GB above.
func human(n int64) string {
	if n >= 1e9 || n <= -1e9 {
		return gb(n)
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}
