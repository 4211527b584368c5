package recipe

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"purpcode/distill"
	"purpcode/oracle"
	"purpcode/redteam"
	"purpcode/train/grpo"
	"purpcode/train/sft"
)

// tune runs the tuning stages on in alone: rule learning on the base model
// over the train prompts, SFT on the distilled set, GRPO from the SFT model
// over the train prompts, and the validation evaluation of the base model
// and of both checkpoints (unless Eval.SkipValidation). It returns the
// checkpoints the final evaluation measures and the validation stages.
func (r *recipe) tune(ctx context.Context, in Tuning) (Checkpoints, []StageResult, error) {
	cfg := r.cfg
	ckpts := Checkpoints{Names: []string{"base"}, Dirs: []string{cfg.BaseModel}}
	trainRows, err := oracle.ReadRows(in.Train)
	if err != nil {
		return ckpts, nil, fmt.Errorf("read train rows: %w", err)
	}
	var valRows []oracle.Row
	if !cfg.Eval.SkipValidation {
		if valRows, err = oracle.ReadRows(in.Validation); err != nil {
			return ckpts, nil, fmt.Errorf("read validation rows: %w", err)
		}
	}
	var val []StageResult
	validate := func(name, dir string) error {
		if cfg.Eval.SkipValidation {
			return nil
		}
		s, err := r.evaluate(ctx, "validation", name, dir, valRows)
		val = append(val, s)
		return err
	}
	if err := validate("base", cfg.BaseModel); err != nil {
		return ckpts, nil, err
	}

	// Rule learning: sample with the rules in context, verify, keep the
	// best verified answer per prompt without the rules.
	r.stage("distill")
	distillDir := filepath.Join(in.Dir, "distill")
	if err := r.distill(ctx, trainRows, distillDir); err != nil {
		return ckpts, nil, err
	}

	// SFT on the distilled set.
	r.stage("sft")
	sc := cfg.SFT
	sc.Model, sc.Data, sc.Out, sc.Resume = cfg.BaseModel, []string{filepath.Join(distillDir, "sft.jsonl")}, filepath.Join(in.Dir, "sft"), false
	r.logf("sft: %s", sc.Data[0])
	sres, err := sft.Run(ctx, sc, sft.Options{CPU: r.opts.CPU, Log: newPrefixWriter(r.opts.Log, "  ")})
	if err != nil {
		return ckpts, nil, fmt.Errorf("sft: %w", err)
	}
	r.logf("sft: %d steps, final loss %.4f -> %s", sres.Steps, sres.Loss, sres.Checkpoint)
	ckpts.Names, ckpts.Dirs = append(ckpts.Names, "sft"), append(ckpts.Dirs, sres.Checkpoint)
	if err := validate("sft", sres.Checkpoint); err != nil {
		return ckpts, nil, err
	}

	// GRPO from the SFT model over the train prompts, easy ones skipped.
	r.stage("rl")
	rc := cfg.RL
	rc.Model, rc.Data, rc.Out, rc.Resume = sres.Checkpoint, []string{in.Train}, filepath.Join(in.Dir, "rl"), false
	rc.SkipIDs = filepath.Join(distillDir, "easy_ids.txt")
	rc.JudgeModel = cfg.JudgeModel
	r.logf("rl: %d steps of %d prompts x %d samples", rc.Steps, rc.PromptsPerStep, rc.GroupSize)
	gres, err := grpo.Run(ctx, rc, grpo.Options{CPU: r.opts.CPU, Judge: r.opts.Judge, Log: newPrefixWriter(r.opts.Log, "  "), OnStep: func(m grpo.Metrics, total int64) {
		r.logf("rl step %d/%d: reward %.3f (format %.2f) usable %d/%d kl %.4f", m.Step, total, m.Reward, m.FormatRate, m.UsableGroups, m.Drawn, m.KL)
	}})
	if err != nil {
		return ckpts, nil, fmt.Errorf("rl: %w", err)
	}
	ckpts.Names, ckpts.Dirs = append(ckpts.Names, "rl"), append(ckpts.Dirs, gres.Checkpoint)
	if err := validate("rl", gres.Checkpoint); err != nil {
		return ckpts, nil, err
	}
	return ckpts, val, nil
}

// distill runs rule learning on the base model: samples with the rule
// context, verified by each row's oracle; writes sft.jsonl and
// easy_ids.txt to dir.
func (r *recipe) distill(ctx context.Context, rows []oracle.Row, dir string) error {
	dc := r.cfg.Distill
	opts := distill.DefaultOptions()
	opts.K, opts.Temperature, opts.MaxNewTokens, opts.MinReward, opts.EasyFrac = dc.K, dc.Temperature, dc.MaxNewTokens, dc.MinReward, dc.EasyFrac
	opts.Seed, opts.Prefix, opts.Out, opts.RuleContext, opts.ScoreWorkers = dc.Seed, r.cfg.RL.Prefix, dir, redteam.RowRuleContext, r.cfg.Threads
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("distill: %w", err)
	}
	m, tok, eos, err := LoadModel(r.cfg.BaseModel, r.opts.CPU)
	if err != nil {
		return fmt.Errorf("distill: %w", err)
	}
	opts.EOS = eos
	oc := oracle.DefaultConfig()
	oc.CodeSec.NoCodeScore = r.cfg.RL.NoCodeScore
	res, err := distill.Run(ctx, m, tok, oracle.NewScorer(r.an, r.sb, r.opts.Judge, oc), rows, opts)
	if err != nil {
		return fmt.Errorf("distill: %w", err)
	}
	r.logf("distill: %d samples' tokens in %.0fs; %d easy prompts\n%s", res.Tokens, res.GenerateS+res.ScoreWaitS, len(res.EasyIDs), indent(res.Summary.Table(), "  "))
	return nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}
