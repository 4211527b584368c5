package plan

import (
	"fmt"
	"strings"

	"purpcode/model/qwen2"
)

// Byte sizes of the stored dtypes.
const (
	bf16Bytes = 2
	fp32Bytes = 4
)

// Options describe the machine and the training step to plan for.
type Options struct {
	GPUs        int   // total GPUs (ranks)
	GPUsPerNode int   // 0: min(GPUs, 8); only the per-node host total uses it
	TP          int   // tensor-parallel degree; DP = GPUs/TP
	GPUMem      int64 // bytes per GPU
	HostMem     int64 // bytes of host memory per node; 0: not checked

	// OptimizerOffload keeps the fp32 master weights and AdamW moments in
	// pinned host memory instead of on the GPU.
	OptimizerOffload bool
	// ActivationCheckpointing keeps only each layer's input and recomputes
	// the layer in backward.
	ActivationCheckpointing bool
	// Reference holds a frozen bf16 copy of the policy (GRPO's KL term).
	Reference bool
	// GradBytes is the size of one gradient element: 4 (fp32, the default
	// and what design.md reduces in) or 2 (bf16).
	GradBytes int

	Seq              int // longest sequence (prompt + response); one must fit in the KV cache
	MicroBatchTokens int // tokens per micro-batch of one TP group
	// LogitsChunkTokens is how many positions the fused lm-head loss turns
	// into (vocab-parallel) fp32 logits at once.
	LogitsChunkTokens int
	// Reserve is GPU memory kept for the CUDA context, NCCL's buffers and
	// the cuBLASLt workspace: an estimate, not measured.
	Reserve int64
}

// DefaultOptions are the flags' defaults: PurpCode's RL shapes (2048-token
// prompts + 3072-token responses; 25600 tokens per micro-batch).
func DefaultOptions() Options {
	return Options{
		GPUs: 8, TP: 8, GPUMem: 80 << 30, Reference: true, GradBytes: fp32Bytes,
		Seq: 5120, MicroBatchTokens: 25600, LogitsChunkTokens: 4096, Reserve: 3 << 30,
	}
}

// Plan is the per-GPU and per-host memory of one configuration. Byte
// counts are for the largest tensor-parallel rank (rank 0 when a split is
// uneven).
type Plan struct {
	Opts   Options
	Layout *Layout
	DP     int

	Params     int64 // the model's parameter count
	RankParams int64 // parameters one TP rank holds
	ShardElems int64 // master/moment elements one rank holds after ZeRO-1

	Weights   int64 // bf16 weights
	Master    int64 // fp32 master weights (on GPU unless offloaded)
	Optimizer int64 // AdamW m and v, fp32
	Grads     int64
	RefPolicy int64 // frozen bf16 reference policy
	// ActFull and ActRecompute are the activations of one micro-batch
	// without and with per-layer recompute; Activations is the one chosen.
	ActFull, ActRecompute, Activations int64
	Logits                             int64 // one lm-head chunk: fp32 logits + bf16 gradient
	Reserve                            int64
	// Tables are RoPE's fp32 cos and sin tables (ForRun only: New counts
	// them in Reserve).
	Tables int64

	// Run is what ForRun planned for; nil for New's plans.
	Run *Run

	GPUResident int64 // every arena above that lives on the GPU
	// KVBytesPerToken is one token's K and V over all layers on one GPU.
	KVBytesPerToken int64
	KVBytes         int64 // GPU memory left for the rollout KV cache
	KVTokens        int64

	HostPerRank int64 // pinned host memory of one rank (offloaded state)
	HostPerNode int64
}

// New computes the plan of cfg under o. It fails on configurations that
// cannot be laid out (TP not dividing the GPUs or the heads); whether the
// plan fits is Fit's question.
func New(cfg *qwen2.Config, o Options) (*Plan, error) {
	if o.GPUs < 1 || o.TP < 1 {
		return nil, fmt.Errorf("plan: %d GPUs at TP %d: both must be at least 1", o.GPUs, o.TP)
	}
	if o.GPUs%o.TP != 0 {
		return nil, fmt.Errorf("plan: --tp %d does not divide --gpus %d (DP = GPUs/TP must be whole)", o.TP, o.GPUs)
	}
	if o.GradBytes != fp32Bytes && o.GradBytes != bf16Bytes {
		return nil, fmt.Errorf("plan: gradient element of %d bytes, want 4 (fp32) or 2 (bf16)", o.GradBytes)
	}
	if o.Seq < 1 || o.MicroBatchTokens < 1 || o.LogitsChunkTokens < 1 {
		return nil, fmt.Errorf("plan: --seq %d, --micro-batch-tokens %d, --logits-chunk %d: all must be positive", o.Seq, o.MicroBatchTokens, o.LogitsChunkTokens)
	}
	if o.GPUMem <= 0 || o.Reserve < 0 || o.HostMem < 0 {
		return nil, fmt.Errorf("plan: --gpu-mem %d, --reserve %d, --host-mem %d: memory sizes must not be negative (and GPU memory positive)", o.GPUMem, o.Reserve, o.HostMem)
	}
	if o.GPUsPerNode <= 0 {
		o.GPUsPerNode = min(o.GPUs, 8)
	}
	l, err := NewLayout(cfg, o.TP)
	if err != nil {
		return nil, err
	}
	p := &Plan{Opts: o, Layout: l, DP: o.GPUs / o.TP}
	// Rank 0 holds the longer part of every uneven split.
	if p.RankParams, p.Params, err = l.RankParams(0); err != nil {
		return nil, err
	}
	p.ShardElems = ceilDiv(p.RankParams, int64(p.DP))
	p.Weights = bf16Bytes * p.RankParams
	p.Master = fp32Bytes * p.ShardElems
	p.Optimizer = 2 * fp32Bytes * p.ShardElems
	p.Grads = int64(o.GradBytes) * p.RankParams
	if o.Reference {
		p.RefPolicy = bf16Bytes * p.RankParams
	}
	p.ActFull, p.ActRecompute = l.activations(int64(o.MicroBatchTokens))
	p.Activations = p.ActFull
	if o.ActivationCheckpointing {
		p.Activations = p.ActRecompute
	}
	p.Logits = l.logits(int64(o.LogitsChunkTokens), bf16Bytes, 0)
	p.Reserve = o.Reserve

	p.GPUResident = p.Weights + p.Grads + p.RefPolicy + p.Activations + p.Logits + p.Reserve
	if o.OptimizerOffload {
		p.HostPerRank = p.Master + p.Optimizer
	} else {
		p.GPUResident += p.Master + p.Optimizer
	}
	p.HostPerNode = p.HostPerRank * int64(min(o.GPUsPerNode, o.GPUs))
	p.KVBytesPerToken = 2 * int64(cfg.Layers) * int64(l.KVHeadsPerRank*cfg.HeadDim) * bf16Bytes
	if free := o.GPUMem - p.GPUResident; free > 0 {
		p.KVBytes = free
		p.KVTokens = free / p.KVBytesPerToken
	}
	return p, nil
}

// activations returns the bytes of one micro-batch of n tokens on TP rank
// 0 (the largest) without and with per-layer recompute, activations in
// bf16 (a device backend's ActDType).
func (l *Layout) activations(n int64) (full, recompute int64) {
	return l.activationsOf(n, bf16Bytes, 0)
}

// activationsOf is activations for elements of act bytes (the backend's
// ActDType: 2 on a device, 4 on the CPU) on TP rank. The terms are
// model/qwen2's activation arena (newActs) tensor by tensor, so on a
// backend that accounts memory the plan equals the measured bytes: per
// layer in, ln1, mid, ln2 (C each), q and att (the rank's heads), k and v
// (its KV heads), gate, up and swiglu out (its FFN slice) in act, rstd1,
// rstd2 and one log-sum-exp per head in fp32; after the last layer out and
// the final norm in act, its rstd and the per-position loss in fp32;
// backward scratch d(residual) in fp32 (every layer adds its branch into
// it), d(norm out), d(mid), dq, d(att), dk, dv, d(gate), d(up), d(swiglu
// out) in act. Attention is flash-style: no T x T scores.
func (l *Layout) activationsOf(n, act int64, rank int) (full, recompute int64) {
	cfg := l.Cfg
	c := int64(cfg.Hidden)
	heads := int64(cfg.Heads / l.TP)
	q := heads * int64(cfg.HeadDim)
	klo, khi := l.kvHeads(rank)
	kv := int64((khi - klo) * cfg.HeadDim)
	ilo, ihi := part(cfg.Intermediate, l.TP, rank)
	i := int64(ihi - ilo)
	layer := act*(4*c+2*q+2*kv+3*i) + fp32Bytes*(2+heads)
	head := act*2*c + fp32Bytes*2
	scratch := fp32Bytes*c + act*(2*c+2*q+2*kv+3*i)
	layers := int64(cfg.Layers)
	full = n * (layers*layer + head + scratch)
	// Recompute keeps each layer's input and one shared set of the rest
	// of a layer's tensors, which backward rebuilds layer by layer.
	recompute = n * (layers*act*c + (layer - act*c) + head + scratch)
	return full, recompute
}

// logits is the lm head's working set for chunk positions on TP rank:
// the (vocab-parallel) fp32 logits and their gradient in act bytes, which
// backward turns into the hidden state's and the head's gradients (the
// device's lmHead and model/qwen2's tpHeadRows both hold the two at once).
func (l *Layout) logits(chunk, act int64, rank int) int64 {
	lo, hi := part(l.Cfg.Vocab, l.TP, rank)
	return chunk * int64(hi-lo) * (fp32Bytes + act)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// FitError is a plan that does not fit; its message is one line.
type FitError struct{ Msg string }

func (e *FitError) Error() string { return e.Msg }

// Fit reports whether the plan fits: every GPU arena within GPUMem with
// room for the KV cache of at least one Seq-token sequence, and the
// offloaded state within HostMem when that is given. The error says by how
// much it is over and what would help.
func (p *Plan) Fit() error {
	o := p.Opts
	need := p.GPUResident + int64(o.Seq)*p.KVBytesPerToken
	if need > o.GPUMem {
		return &FitError{Msg: fmt.Sprintf("does not fit: needs %s per GPU (%s + KV cache of one %d-token sequence %s), --gpu-mem is %s: over by %s%s",
			gb(need), p.breakdown(), o.Seq, gb(int64(o.Seq)*p.KVBytesPerToken), gb(o.GPUMem), gb(need-o.GPUMem), p.hints())}
	}
	if o.HostMem > 0 && p.HostPerNode > o.HostMem {
		return &FitError{Msg: fmt.Sprintf("does not fit in host memory: offloaded master weights and AdamW state need %s per node (%d ranks x %s), --host-mem is %s: over by %s",
			gb(p.HostPerNode), min(o.GPUsPerNode, o.GPUs), gb(p.HostPerRank), gb(o.HostMem), gb(p.HostPerNode-o.HostMem))}
	}
	return nil
}

// breakdown lists the GPU arenas, largest categories first as printed.
func (p *Plan) breakdown() string {
	parts := []string{"weights " + gb(p.Weights)}
	if !p.Opts.OptimizerOffload {
		parts = append(parts, "master "+gb(p.Master), "AdamW "+gb(p.Optimizer))
	}
	parts = append(parts, "grads "+gb(p.Grads))
	if p.RefPolicy > 0 {
		parts = append(parts, "reference "+gb(p.RefPolicy))
	}
	parts = append(parts, "activations "+gb(p.Activations), "logits "+gb(p.Logits), "reserve "+gb(p.Reserve))
	return strings.Join(parts, " + ")
}

// hints names the options that would shrink the plan and are not set yet.
func (p *Plan) hints() string {
	var h []string
	if !p.Opts.OptimizerOffload {
		h = append(h, fmt.Sprintf("--optimizer-offload (moves %s to host)", gb(p.Master+p.Optimizer)))
	}
	if !p.Opts.ActivationCheckpointing {
		h = append(h, fmt.Sprintf("--activation-checkpointing (activations %s instead of %s)", gb(p.ActRecompute), gb(p.ActFull)))
	}
	h = append(h, "a smaller --micro-batch-tokens", "more --gpus")
	return "; try " + strings.Join(h, ", ")
}

// gb formats bytes in decimal gigabytes, the unit of GPU data sheets.
func gb(n int64) string { return fmt.Sprintf("%.2f GB", float64(n)/1e9) }

// String is the plan as `purpcode plan` prints it.
func (p *Plan) String() string {
	o, cfg := p.Opts, p.Layout.Cfg
	var b strings.Builder
	fmt.Fprintf(&b, "model: %d layers, hidden %d, %d/%d q/kv heads of %d, FFN %d, vocab %d: %.2f B parameters\n",
		cfg.Layers, cfg.Hidden, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.Intermediate, cfg.Vocab, float64(p.Params)/1e9)
	fmt.Fprintf(&b, "layout: %d GPUs = TP %d x DP %d (ZeRO-1 over DP), %d KV head(s) per GPU; %.3f B parameters per GPU\n",
		o.GPUs, o.TP, p.DP, p.Layout.KVHeadsPerRank, float64(p.RankParams)/1e9)
	ckpt := "off"
	if o.ActivationCheckpointing {
		ckpt = "per layer"
	}
	fmt.Fprintf(&b, "step: micro-batch %d tokens, sequences up to %d, recompute %s, logits chunk %d tokens\n",
		o.MicroBatchTokens, o.Seq, ckpt, o.LogitsChunkTokens)
	fmt.Fprintf(&b, "\n%-54s %12s  %12s\n", "per GPU (GB = 1e9 bytes)", "GPU", "host")
	row := func(name string, n int64, host bool) {
		g, h := gb(n), "-"
		if host {
			g, h = "-", gb(n)
		}
		fmt.Fprintf(&b, "  %-52s %12s  %12s\n", name, g, h)
	}
	gradName := "gradients fp32"
	if o.GradBytes == bf16Bytes {
		gradName = "gradients bf16"
	}
	row("weights bf16", p.Weights, false)
	row(fmt.Sprintf("master weights fp32 (1/%d ZeRO-1 shard)", p.DP), p.Master, o.OptimizerOffload)
	row("AdamW m+v fp32", p.Optimizer, o.OptimizerOffload)
	row(gradName, p.Grads, false)
	row("reference policy bf16", p.RefPolicy, false)
	used := func(on bool) string {
		if on {
			return " (used)"
		}
		return ""
	}
	row("activations, recompute per layer"+used(o.ActivationCheckpointing), p.ActRecompute, false)
	row("activations, no recompute"+used(!o.ActivationCheckpointing), p.ActFull, false)
	_, vocabHi := part(cfg.Vocab, o.TP, 0)
	row(fmt.Sprintf("lm-head logits chunk (%d x %d fp32) + bf16 grad", o.LogitsChunkTokens, vocabHi), p.Logits, false)
	row("runtime reserve (context, NCCL, cuBLASLt)", p.Reserve, false)
	host := "-"
	if p.HostPerRank > 0 {
		host = gb(p.HostPerRank)
	}
	fmt.Fprintf(&b, "  %-52s %12s  %12s\n", "resident (activations as used)", gb(p.GPUResident), host)
	fmt.Fprintf(&b, "  %-52s %12s\n", "GPU memory", gb(o.GPUMem))
	fmt.Fprintf(&b, "\nKV cache: %s left per GPU at %d KiB per token per GPU (bf16 K+V, %d layers): %d tokens",
		gb(p.KVBytes), p.KVBytesPerToken>>10, cfg.Layers, p.KVTokens)
	if o.Seq > 0 {
		fmt.Fprintf(&b, " = %d sequences of %d", p.KVTokens/int64(o.Seq), o.Seq)
	}
	b.WriteString(" per TP group\n")
	if p.HostPerRank > 0 {
		fmt.Fprintf(&b, "host: %s pinned per rank, %s per node of %d GPUs\n", gb(p.HostPerRank), gb(p.HostPerNode), min(o.GPUsPerNode, o.GPUs))
	} else {
		b.WriteString("host: no offloaded state\n")
	}
	return b.String()
}
