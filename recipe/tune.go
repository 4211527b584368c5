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
		var s StageResult
		err := r.stage(ctx, "validation-"+name, &s, func() error {
			var err error
			s, err = r.evaluate(ctx, "validation", name, dir, valRows)
			return err
		})
		val = append(val, s)
		return err
	}
	if err := validate("base", cfg.BaseModel); err != nil {
		return ckpts, nil, err
	}

	// Rule learning: sample with the rules in context, verify, keep the
	// best verified answer per prompt without the rules. It has no
	// checkpoints: an interrupted distillation runs again.
	distillDir := filepath.Join(in.Dir, "distill")
	var dres distillMarker
	if err := r.stage(ctx, "distill", &dres, func() (err error) {
		dres, err = r.distill(ctx, trainRows, distillDir)
		return err
	}); err != nil {
		return ckpts, nil, err
	}

	// SFT on the distilled set; a resumed run continues from the last
	// checkpoint of an interrupted one.
	sc := cfg.SFT
	sc.Model, sc.Data, sc.Out, sc.Resume = cfg.BaseModel, []string{filepath.Join(distillDir, "sft.jsonl")}, filepath.Join(in.Dir, "sft"), r.opts.Resume
	var sm trainMarker
	if err := r.stage(ctx, "sft", &sm, func() error {
		r.logf("sft: %s", sc.Data[0])
		opts := sft.Options{Backend: r.opts.CPU}
		opts.Log = newPrefixWriter(r.out, "  ")
		defer opts.ShowProgress(r.out)()
		sres, err := sft.Run(ctx, sc, opts)
		if err != nil {
			return fmt.Errorf("sft: %w", err)
		}
		r.logf("sft: %d steps, final loss %.4f -> %s", sres.Steps, sres.Loss, sres.Checkpoint)
		sm, err = newTrainMarker(in.Dir, sres.Checkpoint, sres.Steps)
		return err
	}); err != nil {
		return ckpts, nil, err
	}
	sftDir := sm.dir(in.Dir)
	ckpts.Names, ckpts.Dirs = append(ckpts.Names, "sft"), append(ckpts.Dirs, sftDir)
	if err := validate("sft", sftDir); err != nil {
		return ckpts, nil, err
	}

	// GRPO from the SFT model over the train prompts, easy ones skipped;
	// resumed like SFT.
	rc := cfg.RL
	rc.Model, rc.Data, rc.Out, rc.Resume = sftDir, []string{in.Train}, filepath.Join(in.Dir, "rl"), r.opts.Resume
	rc.SkipIDs = filepath.Join(distillDir, "easy_ids.txt")
	rc.JudgeModel = cfg.JudgeModel
	var rm trainMarker
	if err := r.stage(ctx, "rl", &rm, func() error {
		r.logf("rl: %d steps of %d prompts x %d samples", rc.Steps, rc.PromptsPerStep, rc.GroupSize)
		opts := grpo.Options{Backend: r.opts.CPU, Judge: r.opts.Judge}
		opts.Log = newPrefixWriter(r.out, "  ")
		defer opts.ShowProgress(r.out)()
		gres, err := grpo.Run(ctx, rc, opts)
		if err != nil {
			return fmt.Errorf("rl: %w", err)
		}
		rm, err = newTrainMarker(in.Dir, gres.Checkpoint, gres.Steps)
		return err
	}); err != nil {
		return ckpts, nil, err
	}
	rlDir := rm.dir(in.Dir)
	ckpts.Names, ckpts.Dirs = append(ckpts.Names, "rl"), append(ckpts.Dirs, rlDir)
	if err := validate("rl", rlDir); err != nil {
		return ckpts, nil, err
	}
	return ckpts, val, nil
}

// trainMarker is the completion marker of a training stage.
type trainMarker struct {
	// Checkpoint is the final checkpoint, relative to the run directory
	// so that the directory can be moved.
	Checkpoint string `json:"checkpoint"`
	Steps      int64  `json:"steps"`
}

func newTrainMarker(runDir, checkpoint string, steps int64) (trainMarker, error) {
	rel, err := filepath.Rel(runDir, checkpoint)
	if err != nil {
		return trainMarker{}, fmt.Errorf("checkpoint %s: %w", checkpoint, err)
	}
	return trainMarker{Checkpoint: rel, Steps: steps}, nil
}

func (m trainMarker) dir(runDir string) string { return filepath.Join(runDir, m.Checkpoint) }

// distillMarker is the completion marker of rule learning.
type distillMarker struct {
	Tokens  int `json:"tokens"`
	EasyIDs int `json:"easy_ids"`
}

// distill runs rule learning on the base model: samples with the rule
// context, verified by each row's oracle; writes sft.jsonl and
// easy_ids.txt to dir.
func (r *recipe) distill(ctx context.Context, rows []oracle.Row, dir string) (distillMarker, error) {
	dc := r.cfg.Distill
	opts := distill.DefaultOptions()
	opts.K, opts.Temperature, opts.MaxNewTokens, opts.MinReward, opts.EasyFrac = dc.K, dc.Temperature, dc.MaxNewTokens, dc.MinReward, dc.EasyFrac
	opts.Seed, opts.Prefix, opts.Out, opts.RuleContext, opts.ScoreWorkers = dc.Seed, r.cfg.RL.Prefix, dir, redteam.RowRuleContext, r.cfg.Threads
	if err := opts.Validate(); err != nil {
		return distillMarker{}, fmt.Errorf("distill: %w", err)
	}
	m, tok, eos, err := LoadModel(r.cfg.BaseModel, r.opts.CPU)
	if err != nil {
		return distillMarker{}, fmt.Errorf("distill: %w", err)
	}
	opts.EOS = eos
	oc := oracle.DefaultConfig()
	oc.CodeSec.NoCodeScore = r.cfg.RL.NoCodeScore
	bar := r.out.Counter("distill", "samples", opts.K)
	opts.OnProgress = bar.Update
	opts.OnVerified = func(verified, scored int) { bar.Note(distill.AcceptanceNote(verified, scored)) }
	res, err := distill.Run(ctx, m, tok, oracle.NewScorer(r.an, r.sb, r.opts.Judge, oc), rows, opts)
	bar.Done()
	if err != nil {
		return distillMarker{}, fmt.Errorf("distill: %w", err)
	}
	r.logf("distill: %d samples' tokens in %.0fs; %d easy prompts\n%s", res.Tokens, res.GenerateS+res.ScoreWaitS, len(res.EasyIDs), indent(res.Summary.Table(), "  "))
	return distillMarker{Tokens: res.Tokens, EasyIDs: len(res.EasyIDs)}, nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}
