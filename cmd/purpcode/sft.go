package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"

	"purpcode/internal/progress"
	"purpcode/train"
	"purpcode/train/sft"
)

// listFlag is a repeatable flag that also splits comma lists.
type listFlag struct{ dst *[]string }

func (l listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.dst = append(*l.dst, p)
		}
	}
	return nil
}

// sftFlags registers the flags of `purpcode sft` on fs, bound to fl. Flag
// names are the config file's keys with dashes.
func sftFlags(fs *flag.FlagSet, fl *sft.Config) *string {
	configPath := fs.String("config", "", "YAML run config `file`; flags given on the command line override its values")
	fs.StringVar(&fl.Model, "model", fl.Model, "Hugging Face model `dir` to fine-tune")
	fs.Var(listFlag{&fl.Data}, "data", "training JSONL `files` (repeatable or comma-separated)")
	fs.StringVar(&fl.Out, "out", fl.Out, "output `dir` (metrics.jsonl, checkpoint-STEP/)")
	fs.IntVar(&fl.SeqLen, "seq-len", fl.SeqLen, fmt.Sprintf("tokens per sequence (0: the model's max_position_embeddings, at most %d)", sft.MaxDefaultSeqLen))
	fs.IntVar(&fl.MicroBatch, "micro-batch", fl.MicroBatch, "sequences per micro-batch")
	fs.IntVar(&fl.GradAccum, "grad-accum", fl.GradAccum, "micro-batches per optimizer step")
	fs.Float64Var(&fl.LR, "lr", fl.LR, "peak learning rate")
	fs.Float64Var(&fl.MinLRRatio, "min-lr-ratio", fl.MinLRRatio, "cosine schedule floor as a fraction of --lr")
	fs.StringVar(&fl.Schedule, "schedule", fl.Schedule, "learning-rate schedule: constant, cosine or linear")
	fs.IntVar(&fl.Warmup, "warmup", fl.Warmup, "linear warmup `steps`")
	fs.Float64Var(&fl.WeightDecay, "weight-decay", fl.WeightDecay, "weight decay (decoupled for adamw), not applied to biases and norms")
	fs.Float64Var(&fl.Beta1, "beta1", fl.Beta1, "AdamW beta1")
	fs.Float64Var(&fl.Beta2, "beta2", fl.Beta2, "AdamW beta2")
	fs.Float64Var(&fl.Eps, "eps", fl.Eps, "AdamW epsilon")
	fs.Float64Var(&fl.Momentum, "momentum", fl.Momentum, "SGD momentum")
	fs.Float64Var(&fl.Clip, "clip", fl.Clip, "global gradient-norm limit (0: no clipping)")
	fs.IntVar(&fl.Epochs, "epochs", fl.Epochs, "passes over the data (when --max-steps is 0)")
	fs.IntVar(&fl.MaxSteps, "max-steps", fl.MaxSteps, "optimizer steps; overrides --epochs when > 0")
	fs.Var(listFlag{&fl.EvalData}, "eval-data", "evaluation JSONL `files` (repeatable or comma-separated)")
	fs.IntVar(&fl.EvalEvery, "eval-every", fl.EvalEvery, "evaluate every N `steps` (and at the end)")
	fs.IntVar(&fl.SaveEvery, "save-every", fl.SaveEvery, "checkpoint every N `steps` (and at the end; 0: only at the end)")
	fs.IntVar(&fl.Keep, "keep", fl.Keep, "checkpoints to keep (0: all)")
	fs.Uint64Var(&fl.Seed, "seed", fl.Seed, "seed of the data order")
	fs.BoolVar(&fl.Resume, "resume", fl.Resume, "continue from the newest complete checkpoint in --out")
	fs.StringVar(&fl.TrainOn, "train-on", fl.TrainOn, "loss on last-assistant or all-assistant turns of chat rows")
	fs.StringVar(&fl.ChatTemplate, "chat-template", fl.ChatTemplate, "Jinja chat template `file` overriding the model's")
	fs.StringVar(&fl.Optimizer, "optimizer", fl.Optimizer, "adamw or sgd")
	fs.BoolVar(&fl.Pack, "pack", fl.Pack, "pack several rows into each sequence")
	fs.BoolVar(&fl.ActivationCheckpointing, "activation-checkpointing", fl.ActivationCheckpointing, "keep only each layer's input and recompute the rest in backward (same gradients, less memory)")
	fs.StringVar(&fl.Overlong, "overlong", fl.Overlong, "rows longer than --seq-len: truncate or skip")
	fs.IntVar(&fl.TensorParallel, "tensor-parallel", fl.TensorParallel, "ranks holding the shards of one model replica (the launch's ranks must be a multiple of it; 1: no tensor parallelism)")
	fs.IntVar(&fl.ZeRO, "zero", fl.ZeRO, "1: shard AdamW's state (and on a GPU the fp32 master) over the data-parallel ranks (ZeRO-1; same numbers); 0: off")
	fs.BoolVar(&fl.OptimizerOffload, "optimizer-offload", fl.OptimizerOffload, "keep the ZeRO-1 shard of master weights and AdamW state in host memory and update it on the CPU (needs --zero 1)")
	return configPath
}

// applyFlag copies the field named by a command-line flag from the flag
// values fl to cfg (pointers to the same config struct, whose yaml keys are
// the flag names with underscores), so that only flags given explicitly
// override the file.
func applyFlag(cfg, fl any, name string) {
	key := strings.ReplaceAll(name, "-", "_")
	dst, src := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(fl).Elem()
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == key {
			dst.Field(i).Set(src.Field(i))
			return
		}
	}
}

// sftConfig builds the run config from defaults, the --config file and the
// flags given explicitly.
func sftConfig(args []string, stderr io.Writer) (sft.Config, *cpuFlags, error) {
	// --dist-backend is no config key (a run config says what to train,
	// not how the ranks talk), so it travels with the device flags; the
	// ranks' fingerprint still covers it (joinGroup).
	var db *distBackend
	cfg, cf, err := runConfig(runConfigSpec[sft.Config]{
		name: "sft", usage: "Supervised fine-tuning; writes metrics.jsonl and checkpoint-STEP/ dirs to --out.",
		defaults: sft.DefaultConfig, register: func(fs *flag.FlagSet, fl *sft.Config) *string {
			db = addDistBackendFlag(fs)
			return sftFlags(fs, fl)
		},
		load: sft.LoadConfigFile, validate: (*sft.Config).Validate,
	}, args, stderr)
	if cf != nil {
		cf.dist = db
	}
	return cfg, cf, err
}

func runSFT(args []string, stdout, stderr io.Writer) error {
	cfg, cpu, err := sftConfig(args, stderr)
	if err != nil {
		return err
	}
	// The native libraries (CUDA probe, NCCL) load before the interrupt
	// handler is installed: see notifyInterrupt. A Ctrl-C while ranks
	// gather ends the process by default; nothing is written yet.
	rk, err := openRank(context.Background(), "sft", cfg, cfg.TensorParallel, cpu, stderr)
	if err != nil {
		return err
	}
	defer rk.close()
	ctx, stop := notifyInterrupt()
	defer stop()
	dp, tp := rk.dp, rk.tp
	opts := sft.Options{Log: stderr, Backend: rk.be, DP: dp, TP: tp}
	out := progress.New(stderr)
	opts.Log = out
	endBar := func() {}
	if (train.Group{DP: dp, TP: tp}).Leader() {
		endBar = opts.ShowProgress(out)
	}
	res, err := sft.Run(ctx, cfg, opts)
	endBar()
	if err != nil {
		if ctx.interrupted() {
			return reportTrainerInterrupt(stderr, "sft", args, cfg.Out, ctx)
		}
		return err
	}
	fmt.Fprintf(stdout, "steps %d, final loss %.6f", res.Steps, res.Loss)
	if res.EvalLoss != nil {
		fmt.Fprintf(stdout, ", eval loss %.6f", *res.EvalLoss)
	}
	fmt.Fprintf(stdout, "\ncheckpoint %s\n", res.Checkpoint)
	return nil
}
