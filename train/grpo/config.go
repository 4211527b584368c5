package grpo

import (
	"math"

	"purpcode/train"
	"purpcode/train/optim"
)

// Sampling strategies for choosing the groups of a step.
const (
	SamplingSingleStep = "single-step" // PurpCode: one rollout round sized by the last usable fraction
	SamplingDAPO       = "dapo"        // DAPO: roll out again until B usable groups exist
	SamplingNone       = "none"        // B prompts, zero-variance groups kept (they add only KL/entropy terms)
)

// Config is a GRPO run. YAML keys equal the CLI flag names with
// underscores.
type Config struct {
	Model   string   `yaml:"model"`    // HF model dir: initial policy and frozen reference
	Data    []string `yaml:"data"`     // RL prompt JSONL files
	Out     string   `yaml:"out"`      // output dir
	SkipIDs string   `yaml:"skip_ids"` // file of prompt ids to exclude (easy tasks from rule learning), one per line
	// JudgeModel is a model dir judging general-safety / noreject answers
	// (the caller loads it into Options.Judge); "" = heuristic classifier.
	JudgeModel string `yaml:"judge_model"`

	Steps          int     `yaml:"steps"`            // optimizer steps of the run
	PromptsPerStep int     `yaml:"prompts_per_step"` // B
	GroupSize      int     `yaml:"group_size"`       // n samples per prompt
	Sampling       string  `yaml:"sampling"`         // single-step | dapo | none
	MaxRollFactor  float64 `yaml:"max_roll_factor"`  // draw at most this many times B prompts per step

	Temperature    float64 `yaml:"temperature"`
	TopP           float64 `yaml:"top_p"`
	TopK           int     `yaml:"top_k"`
	MaxPromptLen   int     `yaml:"max_prompt_len"`   // longer prompts are skipped (counted)
	MaxResponseLen int     `yaml:"max_response_len"` // max new tokens
	Prefix         string  `yaml:"prefix"`           // prefilled start of every answer
	RolloutBatch   int     `yaml:"rollout_batch"`    // sequences decoding at once

	LR          float64 `yaml:"lr"`
	Schedule    string  `yaml:"schedule"`
	Warmup      int     `yaml:"warmup"`
	MinLRRatio  float64 `yaml:"min_lr_ratio"`
	WeightDecay float64 `yaml:"weight_decay"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	Clip        float64 `yaml:"clip"` // global grad-norm limit

	ClipLow  float64 `yaml:"clip_low"`
	ClipHigh float64 `yaml:"clip_high"`
	// ClipRatioC is verl's dual clip: for a negative advantage A the
	// per-token loss is capped at -A * clip_ratio_c. Omitted: 3 (verl's
	// default, on); 0 turns it off; otherwise it must exceed 1.
	ClipRatioC  float64 `yaml:"clip_ratio_c"`
	KLCoef      float64 `yaml:"kl_coef"`
	EntropyCoef float64 `yaml:"entropy_coef"`
	PPOEpochs   int     `yaml:"ppo_epochs"`   // passes over the step's data
	MiniBatches int     `yaml:"mini_batches"` // optimizer updates per pass
	PackLen     int     `yaml:"pack_len"`     // tokens per packed training row (0: max_prompt_len + max_response_len)
	// ActivationCheckpointing recomputes each layer's activations in
	// backward from its saved input (qwen2.Acts.Recompute).
	ActivationCheckpointing bool `yaml:"activation_checkpointing"`
	// TensorParallel is the number of ranks holding the shards of one
	// policy replica (1: no tensor parallelism); they roll out and train
	// in lockstep. The launch's world size must be a multiple of it; the
	// replicas are data parallel.
	TensorParallel int `yaml:"tensor_parallel"`
	// ZeRO 1 shards AdamW's state and fp32 master over the data-parallel
	// ranks (same numbers, 1/DP of the optimizer memory per rank);
	// OptimizerOffload keeps those shards in host memory.
	ZeRO             int  `yaml:"zero"`
	OptimizerOffload bool `yaml:"optimizer_offload"`

	NoCodeScore  float64 `yaml:"no_code_score"` // codesec reward for an answer without code
	ScoreWorkers int     `yaml:"score_workers"` // concurrent oracle calls (0: cores)

	Seed      uint64 `yaml:"seed"`
	SaveEvery int    `yaml:"save_every"`
	Keep      int    `yaml:"keep"`
	Resume    bool   `yaml:"resume"`
}

// DefaultConfig holds PurpCode's RL defaults where they apply to any model
// size (group of 8, clip 0.2/0.25, dual clip 3, KL 0.001, 4x max roll).
func DefaultConfig() Config {
	return Config{
		Steps: 100, PromptsPerStep: 8, GroupSize: 8, Sampling: SamplingSingleStep, MaxRollFactor: 4,
		Temperature: 1, TopP: 1, MaxPromptLen: 512, MaxResponseLen: 512, Prefix: "## Analysis\n", RolloutBatch: 32,
		LR: 1e-6, Schedule: optim.Constant, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Clip: 1,
		ClipLow: 0.2, ClipHigh: 0.25, ClipRatioC: DefaultClipRatioC, KLCoef: 0.001, PPOEpochs: 1, MiniBatches: 1,
		NoCodeScore: 0.8, SaveEvery: 50, TensorParallel: 1,
	}
}

// LoadConfigFile decodes YAML into cfg; unknown keys are errors.
func LoadConfigFile(path string, cfg *Config) error { return train.LoadYAMLFile(path, cfg) }

// Validate reports every bad field at once.
func (c *Config) Validate() error {
	p := train.NewProblems("rl config")
	bad := p.Add
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if c.Model == "" {
		bad("model", "missing; want a Hugging Face model directory")
	}
	if len(c.Data) == 0 {
		bad("data", "missing; want one or more prompt JSONL files")
	}
	if c.Out == "" {
		bad("out", "missing; want an output directory")
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"steps", c.Steps}, {"prompts_per_step", c.PromptsPerStep}, {"max_prompt_len", c.MaxPromptLen},
		{"max_response_len", c.MaxResponseLen}, {"rollout_batch", c.RolloutBatch}, {"ppo_epochs", c.PPOEpochs}, {"mini_batches", c.MiniBatches}} {
		if kv.v <= 0 {
			bad(kv.key, "%d: want at least 1", kv.v)
		}
	}
	if c.GroupSize < 2 {
		bad("group_size", "%d: a group needs at least 2 samples for a relative advantage", c.GroupSize)
	}
	switch c.Sampling {
	case SamplingSingleStep, SamplingDAPO, SamplingNone:
	default:
		bad("sampling", "%q: want %s, %s or %s", c.Sampling, SamplingSingleStep, SamplingDAPO, SamplingNone)
	}
	if !finite(c.MaxRollFactor) || c.MaxRollFactor < 1 {
		bad("max_roll_factor", "%v: want a value >= 1", c.MaxRollFactor)
	}
	if !finite(c.Temperature) || c.Temperature < 0 {
		bad("temperature", "%v: want a value >= 0 (0: greedy)", c.Temperature)
	}
	if !(c.TopP > 0 && c.TopP <= 1) {
		bad("top_p", "%v: want a value in (0, 1]", c.TopP)
	}
	if c.TopK < 0 {
		bad("top_k", "%d: want >= 0 (0: off)", c.TopK)
	}
	if !finite(c.LR) || c.LR <= 0 {
		bad("lr", "%v: want a finite value > 0", c.LR)
	}
	switch c.Schedule {
	case optim.Constant, optim.Cosine, optim.Linear:
	default:
		bad("schedule", "%q: want %s, %s or %s", c.Schedule, optim.Constant, optim.Cosine, optim.Linear)
	}
	if c.Warmup < 0 {
		bad("warmup", "%d: want >= 0", c.Warmup)
	}
	if !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1) {
		bad("min_lr_ratio", "%v: want a value in [0, 1]", c.MinLRRatio)
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1) {
		bad("beta1", "%v: want a value in [0, 1)", c.Beta1)
	}
	if !(c.Beta2 >= 0 && c.Beta2 < 1) {
		bad("beta2", "%v: want a value in [0, 1)", c.Beta2)
	}
	if !finite(c.Eps) || c.Eps <= 0 {
		bad("eps", "%v: want a finite value > 0", c.Eps)
	}
	if !(c.ClipLow >= 0 && c.ClipLow < 1) {
		bad("clip_low", "%v: want a value in [0, 1)", c.ClipLow)
	}
	if !finite(c.ClipHigh) || c.ClipHigh < 0 {
		bad("clip_high", "%v: want a finite value >= 0", c.ClipHigh)
	}
	if c.ClipRatioC != 0 && !(c.ClipRatioC > 1) {
		bad("clip_ratio_c", "%v: want 0 (dual clip off) or a value above 1 (verl's default 3)", c.ClipRatioC)
	}
	for _, kv := range []struct {
		key string
		v   float64
	}{{"kl_coef", c.KLCoef}, {"entropy_coef", c.EntropyCoef}, {"clip", c.Clip}, {"weight_decay", c.WeightDecay}, {"no_code_score", c.NoCodeScore}} {
		if !finite(kv.v) || kv.v < 0 {
			bad(kv.key, "%v: want a finite value >= 0", kv.v)
		}
	}
	if c.TensorParallel < 1 {
		bad("tensor_parallel", "%d: want at least 1 (1: no tensor parallelism)", c.TensorParallel)
	}
	c.optimizerConfig().Check(p)
	if c.PackLen != 0 && c.PackLen < c.MaxPromptLen+c.MaxResponseLen {
		bad("pack_len", "%d is shorter than max_prompt_len + max_response_len = %d", c.PackLen, c.MaxPromptLen+c.MaxResponseLen)
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"save_every", c.SaveEvery}, {"keep", c.Keep}, {"score_workers", c.ScoreWorkers}} {
		if kv.v < 0 {
			bad(kv.key, "%d: want >= 0", kv.v)
		}
	}
	return p.Err()
}

func (c *Config) packLen() int {
	if c.PackLen > 0 {
		return c.PackLen
	}
	return c.MaxPromptLen + c.MaxResponseLen
}
