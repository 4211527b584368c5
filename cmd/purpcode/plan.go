package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"purpcode/checkpoint"
	"purpcode/model/qwen2"
	"purpcode/plan"
)

// byteSize is a memory-size flag ("80GiB", "141GB"); it prints as given.
type byteSize struct {
	text string
	n    int64
}

func (b *byteSize) String() string {
	if b == nil {
		return ""
	}
	return b.text
}

func (b *byteSize) Set(s string) error {
	n, err := plan.ParseBytes(s)
	if err != nil {
		return err
	}
	b.text, b.n = s, n
	return nil
}

// planRefused is a plan that does not fit: its one line is already on
// stderr and the exit status is 2.
type planRefused struct{}

func (planRefused) Error() string { return "plan refused" }
func (planRefused) ExitCode() int { return 2 }

func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	def := plan.DefaultOptions()
	model := fs.String("model", "", "model directory (config.json, safetensors) or a preset: qwen2.5-32b, qwen2.5-7b")
	gpus := fs.Int("gpus", def.GPUs, "total GPUs (ranks)")
	perNode := fs.Int("gpus-per-node", 0, "GPUs per node, for the host total (0: min(--gpus, 8))")
	tp := fs.Int("tp", 0, "tensor-parallel degree (0: the largest within a node that divides the heads and --gpus)")
	gpuMem := &byteSize{text: "80GiB", n: def.GPUMem}
	fs.Var(gpuMem, "gpu-mem", "memory per GPU (GB = 1e9 bytes, GiB = 2^30)")
	hostMem := &byteSize{}
	fs.Var(hostMem, "host-mem", "host memory per node to check offloaded state against (unset: not checked)")
	reserve := &byteSize{text: "3GiB", n: def.Reserve}
	fs.Var(reserve, "reserve", "GPU memory kept for the CUDA context, NCCL and cuBLASLt (an estimate)")
	offload := fs.Bool("optimizer-offload", false, "keep fp32 master weights and AdamW state in pinned host memory")
	ckpt := fs.Bool("activation-checkpointing", false, "recompute each layer in backward, keeping only its input")
	noRef := fs.Bool("no-reference", false, "no frozen reference policy (SFT, or GRPO without the KL term)")
	gradDType := fs.String("grad-dtype", "fp32", "gradient storage: fp32 or bf16")
	seq := fs.Int("seq", def.Seq, "longest sequence, prompt + response (one must fit in the KV cache)")
	mbTokens := fs.Int("micro-batch-tokens", def.MicroBatchTokens, "tokens per micro-batch of one tensor-parallel group")
	chunk := fs.Int("logits-chunk", def.LogitsChunkTokens, "positions per lm-head logits chunk")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return flagError{msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if *model == "" {
		return flagError{msg: "--model is required (a model directory or a preset: qwen2.5-32b, qwen2.5-7b)"}
	}
	cfg, dir, err := planModel(*model)
	if err != nil {
		return err
	}
	o := def
	o.GPUs, o.GPUsPerNode, o.GPUMem, o.HostMem, o.Reserve = *gpus, *perNode, gpuMem.n, hostMem.n, reserve.n
	o.OptimizerOffload, o.ActivationCheckpointing, o.Reference = *offload, *ckpt, !*noRef
	o.Seq, o.MicroBatchTokens, o.LogitsChunkTokens = *seq, *mbTokens, *chunk
	switch *gradDType {
	case "fp32":
		o.GradBytes = 4
	case "bf16":
		o.GradBytes = 2
	default:
		return flagError{msg: fmt.Sprintf("--grad-dtype: want fp32 or bf16, got %q", *gradDType)}
	}
	o.TP = *tp
	if o.TP == 0 {
		o.TP = autoTP(cfg, o.GPUs, o.GPUsPerNode)
	}
	p, err := plan.New(cfg, o)
	if err != nil {
		return flagError{msg: err.Error()}
	}
	if err := p.Fit(); err != nil {
		fmt.Fprintf(stderr, "purpcode plan: %v\n", err)
		return planRefused{}
	}
	fmt.Fprintf(stdout, "plan for %s\n%s", *model, p)
	return printLoader(stdout, p.Layout, dir)
}

// planModel resolves --model: a preset name, else a directory or config
// file. dir is "" for presets and for a directory without weights.
func planModel(name string) (*qwen2.Config, string, error) {
	if _, err := os.Stat(name); err != nil {
		cfg, ok, perr := plan.Preset(name)
		if perr != nil {
			return nil, "", perr
		}
		if ok {
			return cfg, "", nil
		}
		return nil, "", fmt.Errorf("--model %s: not a directory or file (%w) and not a preset (%v)", name, err, plan.Presets())
	}
	cfg, err := qwen2.LoadConfig(name)
	if err != nil {
		return nil, "", err
	}
	dir := name
	if st, err := os.Stat(name); err == nil && !st.IsDir() {
		dir = filepath.Dir(name)
	}
	for _, f := range []string{checkpoint.SingleFileName, checkpoint.IndexFileName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return cfg, dir, nil
		}
	}
	return cfg, "", nil
}

// autoTP is the largest tensor-parallel degree that stays inside a node
// and divides both the attention heads and the GPU count.
func autoTP(cfg *qwen2.Config, gpus, perNode int) int {
	if perNode <= 0 {
		perNode = min(gpus, 8)
	}
	best := 1
	for t := 1; t <= min(gpus, perNode); t++ {
		if gpus%t == 0 && cfg.Heads%t == 0 {
			best = t
		}
	}
	return best
}

// printLoader prints what each tensor-parallel rank reads to load its
// slices: from the checkpoint in dir, or, without one, from a packed bf16
// layout of the config (a dry run of the same range computation).
func printLoader(w io.Writer, l *plan.Layout, dir string) error {
	info := plan.PackedInfo(l.Cfg, 2)
	source := "no weights: ranges against a packed bf16 layout"
	if dir != "" {
		ck, err := checkpoint.Open(dir)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		defer ck.Close()
		info, source = ck.Info, dir
	}
	fmt.Fprintf(w, "\nloader (%s):\n", source)
	for r := 0; r < l.TP; r++ {
		reads, err := l.Reads(info, r)
		if err != nil {
			return err
		}
		s := plan.Summarize(r, reads)
		fmt.Fprintf(w, "  TP rank %d reads %.2f GB in %d byte ranges of %d file(s)\n", r, float64(s.Bytes)/1e9, s.Ranges, s.Files)
	}
	return nil
}
