package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"purpcode/internal/progress"
	"purpcode/train"
	"purpcode/train/grpo"
)

// rlFlags registers the flags of `purpcode rl`, named like the config keys
// with dashes.
func rlFlags(fs *flag.FlagSet, fl *grpo.Config) *string {
	configPath := fs.String("config", "", "YAML run config `file`; flags given on the command line override its values")
	fs.StringVar(&fl.Model, "model", fl.Model, "Hugging Face model `dir`: the initial policy and the frozen reference")
	fs.Var(listFlag{&fl.Data}, "data", "RL prompt JSONL `files` {id, messages|prompt, oracle, tests?, meta?}")
	fs.StringVar(&fl.Out, "out", fl.Out, "output `dir` (metrics.jsonl, checkpoint-STEP/)")
	fs.StringVar(&fl.JudgeModel, "judge-model", fl.JudgeModel, "model `dir` judging general-safety/noreject answers (default: the heuristic refusal classifier)")
	fs.StringVar(&fl.SkipIDs, "skip-ids", fl.SkipIDs, "`file` of prompt ids to exclude (one per line; easy tasks from distill)")
	fs.IntVar(&fl.Steps, "steps", fl.Steps, "optimizer steps")
	fs.IntVar(&fl.PromptsPerStep, "prompts-per-step", fl.PromptsPerStep, "prompts per step (B)")
	fs.IntVar(&fl.GroupSize, "group-size", fl.GroupSize, "samples per prompt (n)")
	fs.StringVar(&fl.Sampling, "sampling", fl.Sampling, "group selection: single-step (PurpCode), dapo (resample until B usable) or none")
	fs.Float64Var(&fl.MaxRollFactor, "max-roll-factor", fl.MaxRollFactor, "draw at most this many times B prompts per step")
	fs.Float64Var(&fl.Temperature, "temperature", fl.Temperature, "rollout sampling temperature")
	fs.Float64Var(&fl.TopP, "top-p", fl.TopP, "rollout nucleus sampling")
	fs.IntVar(&fl.TopK, "top-k", fl.TopK, "rollout top-k (0: off)")
	fs.IntVar(&fl.MaxPromptLen, "max-prompt-len", fl.MaxPromptLen, "prompts longer than this many tokens are skipped")
	fs.IntVar(&fl.MaxResponseLen, "max-response-len", fl.MaxResponseLen, "max new tokens per sample")
	fs.StringVar(&fl.Prefix, "prefix", fl.Prefix, "assistant prefix prefilled before sampling")
	fs.IntVar(&fl.RolloutBatch, "rollout-batch", fl.RolloutBatch, "sequences decoding at once")
	fs.Float64Var(&fl.LR, "lr", fl.LR, "learning rate")
	fs.StringVar(&fl.Schedule, "schedule", fl.Schedule, "learning-rate schedule: constant, cosine or linear")
	fs.IntVar(&fl.Warmup, "warmup", fl.Warmup, "warmup optimizer `steps`")
	fs.Float64Var(&fl.MinLRRatio, "min-lr-ratio", fl.MinLRRatio, "cosine/linear schedule floor as a fraction of --lr")
	fs.Float64Var(&fl.WeightDecay, "weight-decay", fl.WeightDecay, "AdamW decoupled weight decay")
	fs.Float64Var(&fl.Beta1, "beta1", fl.Beta1, "AdamW beta1")
	fs.Float64Var(&fl.Beta2, "beta2", fl.Beta2, "AdamW beta2")
	fs.Float64Var(&fl.Eps, "eps", fl.Eps, "AdamW epsilon")
	fs.Float64Var(&fl.Clip, "clip", fl.Clip, "global gradient-norm limit (0: none)")
	fs.BoolVar(&fl.ActivationCheckpointing, "activation-checkpointing", fl.ActivationCheckpointing, "keep only each layer's input and recompute the rest in backward (same gradients, less memory)")
	fs.Float64Var(&fl.ClipLow, "clip-low", fl.ClipLow, "importance-ratio clip below 1 (eps_low)")
	fs.Float64Var(&fl.ClipHigh, "clip-high", fl.ClipHigh, "importance-ratio clip above 1 (eps_high)")
	fs.Float64Var(&fl.ClipRatioC, "clip-ratio-c", fl.ClipRatioC, "dual clip: a negative-advantage token's loss is capped at -A*c (0: off; else > 1)")
	fs.Float64Var(&fl.KLCoef, "kl-coef", fl.KLCoef, "coefficient of the k3 KL loss to the reference (0: no reference model)")
	fs.Float64Var(&fl.EntropyCoef, "entropy-coef", fl.EntropyCoef, "entropy bonus coefficient")
	fs.IntVar(&fl.PPOEpochs, "ppo-epochs", fl.PPOEpochs, "passes over each step's samples")
	fs.IntVar(&fl.MiniBatches, "mini-batches", fl.MiniBatches, "optimizer updates per pass")
	fs.IntVar(&fl.PackLen, "pack-len", fl.PackLen, "tokens per packed training row (0: max prompt + max response)")
	fs.Float64Var(&fl.NoCodeScore, "no-code-score", fl.NoCodeScore, "codesec reward for an answer without code")
	fs.IntVar(&fl.ScoreWorkers, "score-workers", fl.ScoreWorkers, "concurrent oracle calls (0: cores)")
	fs.Uint64Var(&fl.Seed, "seed", fl.Seed, "seed of prompt order and sampling")
	fs.IntVar(&fl.SaveEvery, "save-every", fl.SaveEvery, "checkpoint every N steps (and at the end)")
	fs.IntVar(&fl.Keep, "keep", fl.Keep, "checkpoints to keep (0: all)")
	fs.BoolVar(&fl.Resume, "resume", fl.Resume, "continue from the newest complete checkpoint in --out")
	fs.IntVar(&fl.TensorParallel, "tensor-parallel", fl.TensorParallel, "ranks holding the shards of one model replica (the launch's ranks must be a multiple of it; 1: no tensor parallelism)")
	fs.IntVar(&fl.ZeRO, "zero", fl.ZeRO, "1: shard AdamW's state (and on a GPU the fp32 master) over the data-parallel ranks (ZeRO-1; same numbers); 0: off")
	fs.BoolVar(&fl.OptimizerOffload, "optimizer-offload", fl.OptimizerOffload, "keep the ZeRO-1 shard of master weights and AdamW state in host memory and update it on the CPU (needs --zero 1)")
	return configPath
}

// rlConfig builds the run config from defaults, the --config file and the
// flags given explicitly.
func rlConfig(args []string, stderr io.Writer) (grpo.Config, *cpuFlags, error) {
	// --dist-backend is no config key (a run config says what to train,
	// not how the ranks talk), so it travels with the device flags; the
	// ranks' fingerprint still covers it (joinGroup).
	var db *distBackend
	cfg, cf, err := runConfig(runConfigSpec[grpo.Config]{
		name: "rl", usage: "GRPO with in-process oracles and single-step dynamic sampling; writes metrics.jsonl and checkpoint-STEP/ dirs to --out.",
		defaults: grpo.DefaultConfig, register: func(fs *flag.FlagSet, fl *grpo.Config) *string {
			db = addDistBackendFlag(fs)
			return rlFlags(fs, fl)
		},
		load: grpo.LoadConfigFile, validate: (*grpo.Config).Validate,
	}, args, stderr)
	if cf != nil {
		cf.dist = db
	}
	return cfg, cf, err
}

func runRL(args []string, stdout, stderr io.Writer) error {
	cfg, cpu, err := rlConfig(args, stderr)
	if err != nil {
		return err
	}
	// The native libraries (CUDA probe, NCCL) load before the interrupt
	// handler is installed: see notifyInterrupt. A Ctrl-C while ranks
	// gather ends the process by default; nothing is written yet.
	rk, err := openRank(context.Background(), "rl", cfg, cfg.TensorParallel, cpu, stderr)
	if err != nil {
		return err
	}
	defer rk.close()
	ctx, stop := notifyInterrupt()
	defer stop()
	dp, tp := rk.dp, rk.tp
	opts := grpo.Options{Log: stderr, Backend: rk.be, DP: dp, TP: tp}
	// Only TP rank 0 of a replica scores (grpo broadcasts its rewards), so
	// only it holds the judge model: a 32B judge on every rank of a node
	// would cost the host memory eight times.
	if tp == nil || tp.Rank() == 0 {
		if opts.Judge, err = loadJudge(cfg.JudgeModel, cpu.cpu()); err != nil {
			return err
		}
	}
	out := progress.New(stderr)
	opts.Log = out
	endBar := func() {}
	if (train.Group{DP: dp, TP: tp}).Leader() {
		endBar = opts.ShowProgress(out)
	}
	res, err := grpo.Run(ctx, cfg, opts)
	endBar()
	if err != nil {
		if ctx.interrupted() {
			return reportTrainerInterrupt(stderr, "rl", args, cfg.Out, ctx)
		}
		return err
	}
	fmt.Fprintf(stdout, "steps %d, last reward %.4f (format %.2f), checkpoint %s\n", res.Steps, res.Last.Reward, res.Last.FormatRate, res.Checkpoint)
	return nil
}
