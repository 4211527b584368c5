package grpo

import (
	"fmt"
	"purpcode/train"
	"strings"

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

	ClipLow     float64 `yaml:"clip_low"`
	ClipHigh    float64 `yaml:"clip_high"`
	KLCoef      float64 `yaml:"kl_coef"`
	EntropyCoef float64 `yaml:"entropy_coef"`
	PPOEpochs   int     `yaml:"ppo_epochs"`   // passes over the step's data
	MiniBatches int     `yaml:"mini_batches"` // optimizer updates per pass
	PackLen     int     `yaml:"pack_len"`     // tokens per packed training row (0: max_prompt_len + max_response_len)

	NoCodeScore  float64 `yaml:"no_code_score"` // codesec reward for an answer without code
	ScoreWorkers int     `yaml:"score_workers"` // concurrent oracle calls (0: cores)

	Seed      uint64 `yaml:"seed"`
	SaveEvery int    `yaml:"save_every"`
	Keep      int    `yaml:"keep"`
	Resume    bool   `yaml:"resume"`
}

// DefaultConfig holds PurpCode's RL defaults where they apply to any model
// size (group of 8, clip 0.2/0.25, KL 0.001, 4x max roll).
func DefaultConfig() Config {
	return Config{
		Steps: 100, PromptsPerStep: 8, GroupSize: 8, Sampling: SamplingSingleStep, MaxRollFactor: 4,
		Temperature: 1, TopP: 1, MaxPromptLen: 512, MaxResponseLen: 512, Prefix: "## Analysis\n", RolloutBatch: 32,
		LR: 1e-6, Schedule: optim.Constant, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Clip: 1,
		ClipLow: 0.2, ClipHigh: 0.25, KLCoef: 0.001, PPOEpochs: 1, MiniBatches: 1,
		NoCodeScore: 0.8, SaveEvery: 50,
	}
}

// LoadConfigFile decodes YAML into cfg; unknown keys are errors.
func LoadConfigFile(path string, cfg *Config) error { return train.LoadYAMLFile(path, cfg) }

// Validate reports every bad field at once.
func (c *Config) Validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if c.Model == "" {
		bad("model", "required")
	}
	if len(c.Data) == 0 {
		bad("data", "at least one prompt file is required")
	}
	if c.Out == "" {
		bad("out", "required")
	}
	positive := map[string]int{"steps": c.Steps, "prompts_per_step": c.PromptsPerStep, "max_prompt_len": c.MaxPromptLen,
		"max_response_len": c.MaxResponseLen, "rollout_batch": c.RolloutBatch, "ppo_epochs": c.PPOEpochs, "mini_batches": c.MiniBatches}
	for k, v := range positive {
		if v <= 0 {
			bad(k, "%d must be positive", v)
		}
	}
	if c.GroupSize < 2 {
		bad("group_size", "%d: a group needs at least 2 samples for a relative advantage", c.GroupSize)
	}
	switch c.Sampling {
	case SamplingSingleStep, SamplingDAPO, SamplingNone:
	default:
		bad("sampling", "%q (want %s, %s or %s)", c.Sampling, SamplingSingleStep, SamplingDAPO, SamplingNone)
	}
	if c.MaxRollFactor < 1 {
		bad("max_roll_factor", "%v must be >= 1", c.MaxRollFactor)
	}
	if c.Temperature < 0 || c.TopP <= 0 || c.TopP > 1 || c.TopK < 0 {
		bad("temperature/top_p/top_k", "temperature %v >= 0, top_p %v in (0, 1], top_k %d >= 0 required", c.Temperature, c.TopP, c.TopK)
	}
	if c.LR <= 0 {
		bad("lr", "%v must be positive", c.LR)
	}
	if err := (optim.Schedule{Kind: c.Schedule, LR: c.LR, Warmup: c.Warmup, Total: max(c.Steps, 1), MinRatio: c.MinLRRatio}).Validate(); err != nil {
		bad("schedule", "%v", err)
	}
	if c.ClipLow < 0 || c.ClipLow >= 1 || c.ClipHigh < 0 {
		bad("clip_low/clip_high", "want 0 <= clip_low < 1 and clip_high >= 0, got %v and %v", c.ClipLow, c.ClipHigh)
	}
	if c.KLCoef < 0 || c.EntropyCoef < 0 || c.Clip < 0 || c.WeightDecay < 0 {
		bad("kl_coef/entropy_coef/clip/weight_decay", "must not be negative")
	}
	if c.PackLen != 0 && c.PackLen < c.MaxPromptLen+c.MaxResponseLen {
		bad("pack_len", "%d is shorter than max_prompt_len + max_response_len = %d", c.PackLen, c.MaxPromptLen+c.MaxResponseLen)
	}
	if c.SaveEvery < 0 || c.Keep < 0 || c.ScoreWorkers < 0 {
		bad("save_every/keep/score_workers", "must not be negative")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid rl config:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

func (c *Config) packLen() int {
	if c.PackLen > 0 {
		return c.PackLen
	}
	return c.MaxPromptLen + c.MaxResponseLen
}
