package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"purpcode/analyzer"
	"purpcode/distill"
	"purpcode/engine"
	"purpcode/eval"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/redteam"
	"purpcode/sandbox"
	"purpcode/tokenizer"
	"purpcode/train"
	"purpcode/train/grpo"
	"purpcode/train/sft"
)

// recipeConfig is `purpcode run`'s YAML: the whole PurpCode recipe on one
// base model. Stage sections take the keys of `purpcode distill`, `sft` and
// `rl`; model, data and output paths are filled in by the recipe.
type recipeConfig struct {
	Out       string `yaml:"out"`        // run directory (replaced with --force)
	BaseModel string `yaml:"base_model"` // HF model dir to make safer
	// JudgeModel judges general-safety / noreject answers in every stage;
	// "" uses the heuristic refusal classifier.
	JudgeModel string        `yaml:"judge_model"`
	WorldSeed  uint64        `yaml:"world_seed"` // seed of the toy red-team world
	Threads    int           `yaml:"threads"`    // fixed fan-out, so reruns give the same numbers
	Distill    distillConfig `yaml:"distill"`
	SFT        sft.Config    `yaml:"sft"`
	RL         grpo.Config   `yaml:"rl"`
	Eval       evalConfig    `yaml:"eval"`
}

type distillConfig struct {
	K            int     `yaml:"k"`
	Temperature  float64 `yaml:"temperature"`
	MaxNewTokens int     `yaml:"max_new_tokens"`
	MinReward    float64 `yaml:"min_reward"`
	EasyFrac     float64 `yaml:"easy_frac"`
	Seed         uint64  `yaml:"seed"`
}

type evalConfig struct {
	MaxNewTokens int `yaml:"max_new_tokens"`
}

func defaultRecipe() recipeConfig {
	return recipeConfig{
		Out: "runs/demo", BaseModel: "testdata/base-model", WorldSeed: 1, Threads: 2,
		Distill: distillConfig{K: 8, Temperature: 0.8, MaxNewTokens: 256, MinReward: 0.5, EasyFrac: 0.7, Seed: 1},
		SFT:     sft.DefaultConfig(),
		RL:      grpo.DefaultConfig(),
		Eval:    evalConfig{MaxNewTokens: 256},
	}
}

func loadRecipe(path string) (recipeConfig, error) {
	cfg := defaultRecipe()
	if path == "" {
		return cfg, nil
	}
	return cfg, train.LoadYAMLFile(path, &cfg)
}

// stageResult is one evaluated model of the run.
type stageResult struct {
	eval.Stage
	Model   string  `json:"model"`
	Seconds float64 `json:"seconds"`
}

func runRecipe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	configPath := fs.String("config", "", "recipe YAML (default: the embedded demo settings)")
	out := fs.String("out", "", "run directory (overrides the config's out)")
	force := fs.Bool("force", false, "replace an existing run directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadRecipe(*configPath)
	if err != nil {
		return err
	}
	if *out != "" {
		cfg.Out = *out
	}
	if entries, err := os.ReadDir(cfg.Out); err == nil && len(entries) > 0 {
		if !*force {
			return fmt.Errorf("run directory %s exists; pass --force to replace it or choose another --out", cfg.Out)
		}
		if err := os.RemoveAll(cfg.Out); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &recipe{cfg: cfg, log: stderr, cpu: engine.NewDefaultCPU(engine.CPUOptions{Workers: cfg.Threads}), start: time.Now()}
	stages, err := r.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	eval.TextTable(stdout, stageList(stages))
	fmt.Fprintf(stdout, "\nreport: %s (%.0f s in all)\n", filepath.Join(cfg.Out, "report.md"), time.Since(r.start).Seconds())
	return nil
}

func stageList(s []stageResult) []eval.Stage {
	out := make([]eval.Stage, len(s))
	for i := range s {
		out[i] = s[i].Stage
	}
	return out
}

type recipe struct {
	cfg   recipeConfig
	log   io.Writer
	cpu   *engine.CPU
	start time.Time
	an    *analyzer.Analyzer
	sb    *sandbox.Runner
	judge oracle.Judge // nil: heuristic
}

func (r *recipe) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "[%5.0fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *recipe) run(ctx context.Context) ([]stageResult, error) {
	cfg := r.cfg
	var err error
	if r.an, err = analyzer.New(); err != nil {
		return nil, err
	}
	defer r.an.Close()
	if r.sb, err = sandbox.New(sandbox.Options{Workers: cfg.Threads}); err != nil {
		return nil, err
	}
	if r.judge, err = loadJudge(cfg.JudgeModel, r.cpu); err != nil {
		return nil, err
	}

	// 1. The red-team world: train prompts, held-out prompts.
	worldDir := filepath.Join(cfg.Out, "world")
	wo := redteam.DefaultOptions()
	wo.Seed = cfg.WorldSeed
	world, err := redteam.Generate(wo)
	if err != nil {
		return nil, err
	}
	if _, err := world.WriteDir(worldDir); err != nil {
		return nil, err
	}
	trainRows, err := oracle.ReadRows(filepath.Join(worldDir, "train.jsonl"))
	if err != nil {
		return nil, err
	}
	heldout, err := oracle.ReadRows(filepath.Join(worldDir, "heldout.jsonl"))
	if err != nil {
		return nil, err
	}
	r.logf("world: %d train prompts, %d held-out prompts (seed %d)", len(trainRows), len(heldout), cfg.WorldSeed)

	var stages []stageResult
	base, err := r.evaluate(ctx, "base", cfg.BaseModel, heldout)
	if err != nil {
		return nil, err
	}
	stages = append(stages, base)

	// 2. Rule learning: sample with the rules in context, verify, keep the
	// best verified answer per prompt without the rules.
	distillDir := filepath.Join(cfg.Out, "distill")
	if err := r.distill(ctx, trainRows, distillDir); err != nil {
		return nil, err
	}

	// 3. SFT on the distilled set.
	sc := cfg.SFT
	sc.Model, sc.Data, sc.Out, sc.Resume = cfg.BaseModel, []string{filepath.Join(distillDir, "sft.jsonl")}, filepath.Join(cfg.Out, "sft"), false
	r.logf("sft: %s", sc.Data[0])
	sres, err := sft.Run(ctx, sc, sft.Options{CPU: r.cpu, Log: newPrefixWriter(r.log, "  ")})
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	r.logf("sft: %d steps, final loss %.4f -> %s", sres.Steps, sres.Loss, sres.Checkpoint)
	after, err := r.evaluate(ctx, "sft", sres.Checkpoint, heldout)
	if err != nil {
		return nil, err
	}
	stages = append(stages, after)

	// 4. GRPO from the SFT model over the train prompts, skipping the easy ones.
	rc := cfg.RL
	rc.Model, rc.Data, rc.Out, rc.Resume = sres.Checkpoint, []string{filepath.Join(worldDir, "train.jsonl")}, filepath.Join(cfg.Out, "rl"), false
	rc.SkipIDs = filepath.Join(distillDir, "easy_ids.txt")
	r.logf("rl: %d steps of %d prompts x %d samples", rc.Steps, rc.PromptsPerStep, rc.GroupSize)
	rc.JudgeModel = cfg.JudgeModel
	gres, err := grpo.Run(ctx, rc, grpo.Options{CPU: r.cpu, Judge: r.judge, Log: newPrefixWriter(r.log, "  "), OnStep: func(m grpo.Metrics, total int64) {
		r.logf("rl step %d/%d: reward %.3f (format %.2f) usable %d/%d kl %.4f", m.Step, total, m.Reward, m.FormatRate, m.UsableGroups, m.Drawn, m.KL)
	}})
	if err != nil {
		return nil, fmt.Errorf("rl: %w", err)
	}
	rl, err := r.evaluate(ctx, "rl", gres.Checkpoint, heldout)
	if err != nil {
		return nil, err
	}
	stages = append(stages, rl)
	if err := r.report(stages); err != nil {
		return nil, err
	}
	return stages, nil
}

// distill runs rule learning on the base model: samples with the rule
// context, verified by each row's oracle; writes sft.jsonl and
// easy_ids.txt to dir.
func (r *recipe) distill(ctx context.Context, rows []oracle.Row, dir string) error {
	dc := r.cfg.Distill
	opts := distill.DefaultOptions()
	opts.K, opts.Temperature, opts.MaxNewTokens, opts.MinReward, opts.EasyFrac = dc.K, dc.Temperature, dc.MaxNewTokens, dc.MinReward, dc.EasyFrac
	opts.Seed, opts.Prefix, opts.Out, opts.RuleContext, opts.ScoreWorkers = dc.Seed, r.cfg.RL.Prefix, dir, distillRuleContext, r.cfg.Threads
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("distill: %w", err)
	}
	m, tok, eos, err := r.load(r.cfg.BaseModel)
	if err != nil {
		return err
	}
	opts.EOS = eos
	oc := oracle.DefaultConfig()
	oc.CodeSec.NoCodeScore = r.cfg.RL.NoCodeScore
	res, err := distill.Run(ctx, m, tok, oracle.NewScorer(r.an, r.sb, r.judge, oc), rows, opts)
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

// load reads a model directory with its tokenizer and stop tokens.
func (r *recipe) load(dir string) (*qwen2.Model, *tokenizer.Tokenizer, []int, error) {
	return loadModelDir(dir, r.cpu)
}

// evaluate scores a model's greedy answers to the held-out prompts.
func (r *recipe) evaluate(ctx context.Context, name, dir string, rows []oracle.Row) (stageResult, error) {
	t0 := time.Now()
	m, tok, eos, err := r.load(dir)
	if err != nil {
		return stageResult{}, err
	}
	oc := oracle.DefaultConfig()
	oc.AlwaysRunOracle = true
	scorer := oracle.NewScorer(r.an, r.sb, r.judge, oc)
	scored, metrics, err := eval.Run(ctx, m, tok, scorer, rows, eval.Options{Prefix: r.cfg.RL.Prefix, MaxNewTokens: r.cfg.Eval.MaxNewTokens, EOS: eos})
	if err != nil {
		return stageResult{}, fmt.Errorf("evaluate %s: %w", name, err)
	}
	if err := writeScored(filepath.Join(r.cfg.Out, "eval-"+name+".jsonl"), scored); err != nil {
		return stageResult{}, err
	}
	res := stageResult{Stage: eval.Stage{Name: name, Metrics: metrics}, Model: dir, Seconds: time.Since(t0).Seconds()}
	r.logf("eval %s: insecure %.1f%%, pass %.1f%%, malicious refusal %.1f%%, over-refusal %.1f%%, format %.1f%%",
		name, 100*metrics.InsecureRate, 100*metrics.PassRate, 100*metrics.RefusalRate, 100*metrics.OverRefusal, 100*metrics.FormatRate)
	return res, nil
}

func writeScored(path string, scored []eval.Scored) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, s := range scored {
		row := map[string]any{"id": s.Row.ID, "oracle": s.Row.Oracle, "response": s.Row.Response, "reward": s.Score.Reward,
			"format": s.Score.Format, "oracle_score": s.Score.OracleScore, "detail": s.Score.Detail}
		if err := enc.Encode(row); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// prefixWriter indents a stage's own log lines under the recipe's. It
// writes each complete line synchronously (no goroutine, nothing lost at
// exit) and holds back a trailing partial line until its newline arrives.
type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: w, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.partial[:i]); err != nil {
			return 0, err
		}
		p.partial = p.partial[i+1:]
	}
}

// report writes report.md, stages.json and the plots.
func (r *recipe) report(stages []stageResult) error {
	out := r.cfg.Out
	raw, err := json.MarshalIndent(stages, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "stages.json"), raw, 0o644); err != nil {
		return err
	}
	if err := eval.PlotStages(filepath.Join(out, "before_after.png"), "Held-out prompts: base vs after SFT vs after RL", stageList(stages)); err != nil {
		return err
	}
	sftLoss, err := metricSeries(filepath.Join(out, "sft", sft.MetricsFile), "loss")
	if err != nil {
		return err
	}
	if err := eval.PlotCurves(filepath.Join(out, "sft_loss.png"), "SFT on distilled data", "step", "loss", []eval.Series{sftLoss}); err != nil {
		return err
	}
	reward, err := metricSeries(filepath.Join(out, "rl", grpo.MetricsFile), "reward")
	if err != nil {
		return err
	}
	format, err := metricSeries(filepath.Join(out, "rl", grpo.MetricsFile), "format_rate")
	if err != nil {
		return err
	}
	curves := []eval.Series{reward, format}
	for _, o := range oracle.Oracles {
		if s, err := metricSeries(filepath.Join(out, "rl", grpo.MetricsFile), "reward_by_oracle."+o); err == nil && len(s.Y) > 0 {
			s.Name = "reward " + o
			curves = append(curves, s)
		}
	}
	if err := eval.PlotCurves(filepath.Join(out, "rl_reward.png"), "GRPO: mean reward per step (sampled groups)", "step", "mean", curves); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# PurpCode recipe on %s\n\n", r.cfg.BaseModel)
	fmt.Fprintf(&b, "Held-out prompts of the toy red-team world (seed %d), greedy decoding, one answer each.\n\n", r.cfg.WorldSeed)
	b.WriteString(eval.Table(stageList(stages)))
	b.WriteString("\n![before/after](before_after.png)\n\n")
	b.WriteString(metricDefinitions)
	b.WriteString("\n## Training\n\n![SFT loss](sft_loss.png)\n\n![GRPO reward](rl_reward.png)\n\n")
	b.WriteString("## Stages\n\n| stage | model | prompts per oracle | seconds |\n|---|---|---|---:|\n")
	for _, s := range stages {
		var counts []string
		for _, o := range s.Metrics.Oracles() {
			counts = append(counts, fmt.Sprintf("%s %d", o, s.Metrics.Count[o]))
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %.0f |\n", s.Name, s.Model, strings.Join(counts, ", "), s.Seconds)
	}
	b.WriteString("\nPer-prompt answers and scores: `eval-<stage>.jsonl`; training logs: `sft/metrics.jsonl`, `rl/metrics.jsonl`; distillation summary: `distill/summary.json`.\n")
	return os.WriteFile(filepath.Join(out, "report.md"), []byte(b.String()), 0o644)
}

// metricDefinitions explains the table's columns in report.md.
const metricDefinitions = `## What the columns measure

- **insecure-code rate**: coding prompts (codesec oracle) whose answer contains Python code with a
  medium or high analyzer finding.
- **functional pass rate**: coding prompts (correctness oracle) whose answer's code passes the task's
  tests in the sandbox. Held-out prompts come from task templates that post-training (distillation,
  SFT, RL) never sees; the base model's pretraining corpus has other instances of them.
- **malicious refusal rate**: malicious requests (general-safety oracle) judged to get no harmful help.
- **benign over-refusal rate**: benign requests that sound dangerous (noreject oracle) judged refused.
- **format pass rate**: answers with a non-empty "## Analysis" and "## Answer" and no repetition loop.
- **mean reward**: format gate x the prompt's oracle, averaged over all prompts (what RL maximises).
`

// metricSeries reads one numeric field (a dotted path into nested objects,
// e.g. "reward_by_oracle.codesec") of every step row of a metrics.jsonl;
// steps without it are left out.
func metricSeries(path, field string) (eval.Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return eval.Series{}, err
	}
	defer f.Close()
	s := eval.Series{Name: field}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
		step, ok1 := row["step"].(float64)
		var cur any = row
		for _, k := range strings.Split(field, ".") {
			if m, ok := cur.(map[string]any); ok {
				cur = m[k]
			} else {
				cur = nil
			}
		}
		v, ok2 := cur.(float64)
		if ok1 && ok2 && row["event"] == nil {
			s.X, s.Y = append(s.X, step), append(s.Y, v)
		}
	}
	return s, sc.Err()
}
