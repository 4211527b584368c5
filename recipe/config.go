package recipe

import (
	"fmt"

	"purpcode/redteam"
	"purpcode/train"
	"purpcode/train/grpo"
	"purpcode/train/sft"
)

// Config is `purpcode run`'s YAML: the whole PurpCode recipe on one base
// model. Stage sections take the keys of `purpcode distill`, `sft` and
// `rl`; model, data and output paths are filled in by the recipe.
type Config struct {
	Out       string `yaml:"out"`        // run directory
	BaseModel string `yaml:"base_model"` // HF model dir to make safer
	// JudgeModel judges general-safety / noreject answers in every stage
	// (the caller loads it into Options.Judge); "" uses the heuristic
	// refusal classifier.
	JudgeModel string `yaml:"judge_model"`
	// WorldSeed draws the world's split and phrasings; the corpus (and so
	// the base model) is always world_corpus_seed's.
	WorldSeed uint64        `yaml:"world_seed"`
	World     WorldConfig   `yaml:"world"`
	Threads   int           `yaml:"threads"` // fixed fan-out, so reruns give the same numbers
	Distill   DistillConfig `yaml:"distill"`
	SFT       sft.Config    `yaml:"sft"`
	RL        grpo.Config   `yaml:"rl"`
	Eval      EvalConfig    `yaml:"eval"`
}

// WorldConfig sizes the world; zero keeps redteam.DefaultOptions' value.
type WorldConfig struct {
	CorpusSeed uint64 `yaml:"corpus_seed"`
	// CorpusWorlds is the number of worlds (seeds corpus_seed, +1, ...)
	// whose test prompts the base model's corpus was decontaminated
	// against (synth --corpus-worlds); it must match the base model, or
	// the test-prompts-in-corpus count describes another corpus.
	CorpusWorlds                  int `yaml:"corpus_worlds"`
	TrainTasksPerTemplate         int `yaml:"train_tasks_per_template"`
	ValidationTasksPerTemplate    int `yaml:"validation_tasks_per_template"`
	TestTasksPerTemplate          int `yaml:"test_tasks_per_template"`
	TrainRequestsPerTemplate      int `yaml:"train_requests_per_template"`
	ValidationRequestsPerTemplate int `yaml:"validation_requests_per_template"`
	TestRequestsPerTemplate       int `yaml:"test_requests_per_template"`
	CorpusSize                    int `yaml:"corpus_size"`
	// MaxRows keeps at most this many rows of each split, evenly spaced
	// (0: all); for smoke tests.
	MaxRows int `yaml:"max_rows"`
}

// DistillConfig are the rule-learning knobs.
type DistillConfig struct {
	K            int     `yaml:"k"`
	Temperature  float64 `yaml:"temperature"`
	MaxNewTokens int     `yaml:"max_new_tokens"`
	MinReward    float64 `yaml:"min_reward"`
	EasyFrac     float64 `yaml:"easy_frac"`
	Seed         uint64  `yaml:"seed"`
}

// EvalConfig controls the evaluations.
type EvalConfig struct {
	MaxNewTokens int `yaml:"max_new_tokens"`
	// SkipValidation leaves out the validation evaluation of every stage
	// (saves time; nothing to choose knobs on then).
	SkipValidation bool `yaml:"skip_validation"`
}

// Default is the recipe with the embedded base model.
func Default() Config {
	return Config{
		Out: "runs/demo", BaseModel: "testdata/base-model", WorldSeed: 1, Threads: 2,
		Distill: DistillConfig{K: 8, Temperature: 0.8, MaxNewTokens: 256, MinReward: 0.5, EasyFrac: 0.7, Seed: 1},
		SFT:     sft.DefaultConfig(),
		RL:      grpo.DefaultConfig(),
		Eval:    EvalConfig{MaxNewTokens: 256},
	}
}

// Load reads a recipe YAML over Default ("" gives Default).
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	if err := train.LoadYAMLFile(path, &cfg); err != nil {
		return cfg, fmt.Errorf("recipe config: %w", err) // err names the file and line
	}
	return cfg, nil
}

// WorldOptions are the redteam options of the configured world.
func (c Config) WorldOptions() redteam.Options {
	o := redteam.DefaultOptions()
	o.Seed = c.WorldSeed
	w := c.World
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	if w.CorpusSeed > 0 {
		o.CorpusSeed = w.CorpusSeed
	}
	set(&o.CorpusWorlds, w.CorpusWorlds)
	set(&o.TrainTasksPerTemplate, w.TrainTasksPerTemplate)
	set(&o.ValidationTasksPerTemplate, w.ValidationTasksPerTemplate)
	set(&o.HeldoutTasksPerTemplate, w.TestTasksPerTemplate)
	set(&o.TrainRequestsPerTemplate, w.TrainRequestsPerTemplate)
	set(&o.ValidationRequestsPerTemplate, w.ValidationRequestsPerTemplate)
	set(&o.HeldoutRequestsPerTemplate, w.TestRequestsPerTemplate)
	set(&o.Corpus.Size, w.CorpusSize)
	return o
}
