package main

import (
	"flag"
	"fmt"

	"purpcode/engine"
	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/recipe"
	"purpcode/tokenizer"
)

// addJudgeFlag registers --judge-model: the general-safety and noreject
// oracles then ask that model (in-process, greedy, with oracle.JudgePrompt)
// instead of the heuristic refusal classifier.
func addJudgeFlag(fs *flag.FlagSet) *string {
	return fs.String("judge-model", "", "model `dir` judging general-safety/noreject answers (default: the heuristic refusal classifier)")
}

// loadJudge returns the judge for dir, or nil (the heuristic) when dir is
// empty. The judge model has its own KV cache and decodes the prompts of
// concurrent scorers together.
func loadJudge(dir string, be engine.Backend) (oracle.Judge, error) {
	if dir == "" {
		return nil, nil
	}
	m, tok, eos, err := loadModelDir(dir, be)
	if err != nil {
		return nil, fmt.Errorf("judge model: %w", err)
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: 16, EOS: eos})
	if err != nil {
		return nil, fmt.Errorf("judge model: %w", err)
	}
	return oracle.ModelJudge{Gen: generate.NewCompleter(eng, tok, generate.SamplingParams{Greedy: true, MaxNewTokens: 256})}, nil
}

// loadModelDir loads a model directory for generation (recipe.LoadModel).
func loadModelDir(dir string, be engine.Backend) (*qwen2.Model, *tokenizer.Tokenizer, []int, error) {
	return recipe.LoadModel(dir, be)
}
