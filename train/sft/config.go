package sft

import (
	"math"
	"strings"

	"purpcode/train"
	"purpcode/train/data"
	"purpcode/train/optim"
)

// Config is one SFT run. The yaml tags are the keys of the --config file;
// the command-line flags use the same names with dashes.
type Config struct {
	Model        string   `yaml:"model"`         // HF model directory to start from
	Data         []string `yaml:"data"`          // training JSONL files
	Out          string   `yaml:"out"`           // output directory
	SeqLen       int      `yaml:"seq_len"`       // tokens per sequence (T); 0: the model's limit, at most MaxDefaultSeqLen
	MicroBatch   int      `yaml:"micro_batch"`   // sequences per micro-batch (B)
	GradAccum    int      `yaml:"grad_accum"`    // micro-batches per optimizer step
	LR           float64  `yaml:"lr"`            // peak learning rate
	MinLRRatio   float64  `yaml:"min_lr_ratio"`  // cosine floor as a fraction of lr
	Schedule     string   `yaml:"schedule"`      // constant | cosine | linear
	Warmup       int      `yaml:"warmup"`        // warmup steps
	WeightDecay  float64  `yaml:"weight_decay"`  // decoupled (AdamW) / L2 (SGD)
	Beta1        float64  `yaml:"beta1"`         // AdamW
	Beta2        float64  `yaml:"beta2"`         // AdamW
	Eps          float64  `yaml:"eps"`           // AdamW
	Momentum     float64  `yaml:"momentum"`      // SGD
	Clip         float64  `yaml:"clip"`          // global grad-norm limit, 0 = none
	Epochs       int      `yaml:"epochs"`        // passes over the data (when max_steps is 0)
	MaxSteps     int      `yaml:"max_steps"`     // optimizer steps; overrides epochs when > 0
	EvalData     []string `yaml:"eval_data"`     // evaluation JSONL files
	EvalEvery    int      `yaml:"eval_every"`    // steps between evaluations (and at the end)
	SaveEvery    int      `yaml:"save_every"`    // steps between checkpoints (and at the end)
	Keep         int      `yaml:"keep"`          // checkpoints kept, 0 = all
	Seed         uint64   `yaml:"seed"`          // data order
	Resume       bool     `yaml:"resume"`        // continue from the newest checkpoint in out
	TrainOn      string   `yaml:"train_on"`      // last-assistant | all-assistant
	ChatTemplate string   `yaml:"chat_template"` // Jinja file overriding the model's template
	Optimizer    string   `yaml:"optimizer"`     // adamw | sgd
	Pack         bool     `yaml:"pack"`          // several rows per sequence
	Overlong     string   `yaml:"overlong"`      // truncate | skip
	// ActivationCheckpointing keeps only each layer's input and recomputes
	// the rest in backward (qwen2.Acts.Recompute).
	ActivationCheckpointing bool `yaml:"activation_checkpointing"`
	// TensorParallel is the number of ranks holding the shards of one
	// model replica (1: no tensor parallelism). The launch's world size
	// must be a multiple of it; the replicas are data parallel.
	TensorParallel int `yaml:"tensor_parallel"`
	// ZeRO 1 shards AdamW's state and fp32 master over the data-parallel
	// ranks (same numbers, 1/DP of the optimizer memory per rank);
	// OptimizerOffload keeps those shards in host memory.
	ZeRO             int  `yaml:"zero"`
	OptimizerOffload bool `yaml:"optimizer_offload"`
}

// MaxDefaultSeqLen caps the sequence length chosen when seq_len is 0: a
// model's max_position_embeddings (32768 for Qwen2.5) is far more than SFT
// rows need and than activations fit.
const MaxDefaultSeqLen = 2048

// DefaultConfig returns the defaults (those of HF's Trainer where one
// exists: AdamW betas 0.9/0.999, eps 1e-8, clip 1.0).
func DefaultConfig() Config {
	return Config{
		MicroBatch: 1, GradAccum: 1, LR: 1e-5, Schedule: optim.Cosine,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Clip: 1, Epochs: 1, SaveEvery: 500,
		TrainOn: data.TrainLastAssistant, Optimizer: "adamw", Overlong: data.OverlongTruncate,
		TensorParallel: 1,
	}
}

// LoadConfigFile decodes a YAML file into cfg (keys not in the file keep
// cfg's values). Unknown keys are errors, so a typo is not ignored.
func LoadConfigFile(path string, cfg *Config) error { return train.LoadYAMLFile(path, cfg) }

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error {
	p := train.NewProblems("sft config")
	bad := p.Add
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if c.Model == "" {
		bad("model", "missing; want a Hugging Face model directory")
	}
	if len(c.Data) == 0 {
		bad("data", "missing; want one or more JSONL files")
	}
	for i, d := range c.Data {
		if strings.TrimSpace(d) == "" {
			bad("data", "entry %d is empty", i)
		}
	}
	if c.Out == "" {
		bad("out", "missing; want an output directory")
	}
	if c.SeqLen != 0 && c.SeqLen < 2 {
		bad("seq_len", "%d: want at least 2 (or 0: the model's max_position_embeddings, at most %d)", c.SeqLen, MaxDefaultSeqLen)
	}
	if c.MicroBatch < 1 {
		bad("micro_batch", "%d: want at least 1", c.MicroBatch)
	}
	if c.GradAccum < 1 {
		bad("grad_accum", "%d: want at least 1", c.GradAccum)
	}
	if !finite(c.LR) || c.LR < 0 {
		bad("lr", "%v: want a finite value >= 0", c.LR)
	}
	if !finite(c.MinLRRatio) || c.MinLRRatio < 0 || c.MinLRRatio > 1 {
		bad("min_lr_ratio", "%v: want a value in [0, 1]", c.MinLRRatio)
	}
	switch c.Schedule {
	case optim.Constant, optim.Cosine, optim.Linear:
	default:
		bad("schedule", "%q: want constant, cosine or linear", c.Schedule)
	}
	if c.Warmup < 0 {
		bad("warmup", "%d: want >= 0", c.Warmup)
	}
	if !finite(c.WeightDecay) || c.WeightDecay < 0 {
		bad("weight_decay", "%v: want a finite value >= 0", c.WeightDecay)
	}
	if !finite(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1 {
		bad("beta1", "%v: want a value in [0, 1)", c.Beta1)
	}
	if !finite(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1 {
		bad("beta2", "%v: want a value in [0, 1)", c.Beta2)
	}
	if !finite(c.Eps) || c.Eps <= 0 {
		bad("eps", "%v: want a finite value > 0", c.Eps)
	}
	if !finite(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
		bad("momentum", "%v: want a value in [0, 1)", c.Momentum)
	}
	if !finite(c.Clip) || c.Clip < 0 {
		bad("clip", "%v: want a finite value >= 0 (0 disables clipping)", c.Clip)
	}
	if c.Epochs < 0 {
		bad("epochs", "%d: want >= 0", c.Epochs)
	}
	if c.MaxSteps < 0 {
		bad("max_steps", "%d: want >= 0", c.MaxSteps)
	}
	if c.Epochs == 0 && c.MaxSteps == 0 {
		bad("epochs", "0 and max_steps 0: set one of them")
	}
	if c.EvalEvery < 0 {
		bad("eval_every", "%d: want >= 0", c.EvalEvery)
	}
	if c.EvalEvery > 0 && len(c.EvalData) == 0 {
		bad("eval_every", "%d but no eval_data given", c.EvalEvery)
	}
	if c.SaveEvery < 0 {
		bad("save_every", "%d: want >= 0 (0 saves only at the end)", c.SaveEvery)
	}
	if c.Keep < 0 {
		bad("keep", "%d: want >= 0 (0 keeps all)", c.Keep)
	}
	switch c.TrainOn {
	case data.TrainLastAssistant, data.TrainAllAssistant:
	default:
		bad("train_on", "%q: want last-assistant or all-assistant", c.TrainOn)
	}
	switch c.Optimizer {
	case "adamw", "sgd":
	default:
		bad("optimizer", "%q: want adamw or sgd", c.Optimizer)
	}
	switch c.Overlong {
	case data.OverlongTruncate, data.OverlongSkip:
	default:
		bad("overlong", "%q: want truncate or skip", c.Overlong)
	}
	if c.TensorParallel < 1 {
		bad("tensor_parallel", "%d: want at least 1 (1: no tensor parallelism)", c.TensorParallel)
	}
	c.optimizerConfig().Check(p)
	return p.Err()
}
