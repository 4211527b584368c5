package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"purpcode/analyzer"
	"purpcode/engine"
	"purpcode/eval"
	"purpcode/generate"
	"purpcode/internal/progress"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/redteam"
	"purpcode/redteam/dedup"
	"purpcode/sandbox"
	"purpcode/tokenizer"
)

// Options are what the caller provides besides the config.
type Options struct {
	CPU *engine.CPU // compute for every stage
	// Judge judges general-safety / noreject answers (nil: the heuristic
	// refusal classifier); load it from Config.JudgeModel.
	Judge oracle.Judge
	// Log receives the run's log lines and progress bars (nil:
	// discarded); bars are redrawn in place when it is a terminal.
	Log io.Writer
	// OnStage, when set, is called as each stage starts to run (not for
	// one skipped as complete), with its name: "world", "validation-base",
	// "distill", "sft", "validation-sft", "rl", "validation-rl", then
	// "test-base", "test-sft", "test-rl".
	OnStage func(stage string)
	// Resume continues the run in Config.Out: stages with a completion
	// marker are skipped, SFT and RL continue from their last checkpoint,
	// any other unfinished stage runs again. An empty or absent directory
	// starts a new run.
	Resume bool
}

// StageResult is one evaluated model of the run.
type StageResult struct {
	eval.Stage
	Model   string  `json:"model"`
	Seconds float64 `json:"seconds"`
}

// Result is a finished run: the test split's stages (the headline), the
// validation split's, and the world's sizes.
type Result struct {
	Seed       uint64        `json:"seed"`
	Test       []StageResult `json:"test"`
	Validation []StageResult `json:"validation,omitempty"`
	World      WorldStats    `json:"world"`
}

// WorldStats describe the split the numbers come from.
type WorldStats struct {
	Train, Validation, Test int // prompt rows
	CorpusSeed              uint64
	// TestInCorpus counts test prompts that the base model's pretraining
	// corpus holds verbatim (0 when the world is the corpus's own).
	TestInCorpus       int
	ValidationInCorpus int
	// TestNearCorpus counts test prompts that redteam/dedup's 13-gram
	// decontamination matches in a corpus user turn (a shared normalised
	// 13-token sequence, or a short prompt contained whole): the corpus
	// draws other instances of every template, test templates included,
	// so this counts template boilerplate as well as copies.
	TestNearCorpus int `json:",omitempty"`
}

// Tuning is everything the tuning stages may read. It holds no test path:
// the test rows are written only after tuning has returned.
type Tuning struct {
	Train      string // train prompt rows (distillation, RL)
	Validation string // validation prompt rows (evaluated per stage, for choosing knobs)
	Dir        string // the run directory the stages write into
}

// Checkpoints are the models of the stages, in order.
type Checkpoints struct {
	Names []string
	Dirs  []string
}

type recipe struct {
	cfg   Config
	opts  Options
	out   *progress.Output // the log and the stages' progress bars
	start time.Time
	an    *analyzer.Analyzer
	sb    *sandbox.Runner
}

func (r *recipe) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "[%5.0fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the recipe into cfg.Out (which must be empty or absent, unless
// opts.Resume) and writes report.md, stages.json and the plots there. Each
// stage leaves a completion marker (MarkerDir) after its outputs; a
// cancelled ctx stops the run with an *InterruptedError.
func Run(ctx context.Context, cfg Config, opts Options) (*Result, error) {
	if opts.CPU == nil {
		opts.CPU = engine.NewDefaultCPU(engine.CPUOptions{Workers: cfg.Threads})
	}
	if err := prepareDir(cfg, opts.Resume); err != nil {
		return nil, err
	}
	r := &recipe{cfg: cfg, opts: opts, out: progress.New(opts.Log), start: time.Now()}
	var err error
	if r.an, err = analyzer.New(); err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	defer r.an.Close()
	if r.sb, err = sandbox.New(sandbox.Options{Workers: cfg.Threads}); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	// 1. The world's tuning files. The world is generated again for the
	// test file after tuning, so no test row is on disk or in a value the
	// tuning stages can reach while they run.
	in := r.tuningFiles()
	var stats WorldStats
	err = r.stage(ctx, "world", &stats, func() error {
		if stats, err = r.writeTuningFiles(in); err != nil {
			return err
		}
		r.logf("world (seed %d, corpus seed %d): %d train, %d validation, %d test prompts; %d test prompts are in the pretraining corpus verbatim, %d match it by 13-gram",
			cfg.WorldSeed, stats.CorpusSeed, stats.Train, stats.Validation, stats.Test, stats.TestInCorpus, stats.TestNearCorpus)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// 2-4. Tuning: distill -> SFT -> RL, each stage evaluated on validation.
	ckpts, val, err := r.tune(ctx, in)
	if err != nil {
		return nil, err
	}

	// 5. The final evaluation: the only reader of the test file, which
	// the first test stage to run writes.
	test, err := r.evaluateTest(ctx, ckpts)
	if err != nil {
		return nil, err
	}
	res := &Result{Seed: cfg.WorldSeed, Test: test, Validation: val, World: stats}
	if err := r.report(res); err != nil {
		return nil, err
	}
	return res, nil
}

// world generates the configured world.
func (r *recipe) world() (*redteam.World, error) {
	w, err := redteam.Generate(r.cfg.WorldOptions())
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	w.Train = limitRows(w.Train, r.cfg.World.MaxRows)
	w.Validation = limitRows(w.Validation, r.cfg.World.MaxRows)
	w.Test = limitRows(w.Test, r.cfg.World.MaxRows)
	return w, nil
}

// limitRows keeps n evenly spaced rows (all when n <= 0 or n >= len).
func limitRows(rows []redteam.PromptRow, n int) []redteam.PromptRow {
	if n <= 0 || n >= len(rows) {
		return rows
	}
	out := make([]redteam.PromptRow, n)
	for i := range out {
		out[i] = rows[i*len(rows)/n]
	}
	return out
}

// tuningFiles are the paths writeTuningFiles writes.
func (r *recipe) tuningFiles() Tuning {
	dir := filepath.Join(r.cfg.Out, "world")
	return Tuning{Train: filepath.Join(dir, redteam.FileTrain), Validation: filepath.Join(dir, redteam.FileValidation), Dir: r.cfg.Out}
}

func (r *recipe) writeTuningFiles(in Tuning) (WorldStats, error) {
	w, err := r.world()
	if err != nil {
		return WorldStats{}, err
	}
	if _, err := w.WriteDir(filepath.Dir(in.Train)); err != nil {
		return WorldStats{}, err
	}
	return WorldStats{
		Train: len(w.Train), Validation: len(w.Validation), Test: len(w.Test), CorpusSeed: w.Options.CorpusSeed,
		TestInCorpus: w.CorpusOverlap(w.Test), ValidationInCorpus: w.CorpusOverlap(w.Validation),
		TestNearCorpus: NearCorpus(w, w.Test),
	}, nil
}

// NearCorpus counts the rows whose prompt dedup.Decontaminate (13-gram)
// matches with some user turn of the world's corpus. The corpus turns are
// its reference suite and the rows its candidates, so each row is counted
// once whichever corpus turn it shares a gram with.
func NearCorpus(w *redteam.World, rows []redteam.PromptRow) int {
	var corpus []string
	for _, c := range w.Corpus {
		for _, m := range c.Messages {
			if m.Role == "user" {
				corpus = append(corpus, m.Content)
			}
		}
	}
	ids := make([]string, len(rows))
	prompts := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
		if len(r.Messages) > 0 {
			prompts[i] = r.Messages[len(r.Messages)-1].Content
		}
	}
	_, hits := dedup.Decontaminate(map[string][]string{"corpus": corpus}, ids, prompts)
	return len(hits)
}

func (r *recipe) writeTestFile() (string, error) {
	w, err := r.world()
	if err != nil {
		return "", err
	}
	return w.WriteTest(filepath.Join(r.cfg.Out, "heldout"))
}

// LoadModel loads a model directory for generation: weights, tokenizer and
// the stop tokens from generation_config.json, config.json and the
// tokenizer.
func LoadModel(dir string, be engine.Backend) (*qwen2.Model, *tokenizer.Tokenizer, []int, error) {
	m, err := qwen2.LoadInference(dir, be)
	if err != nil {
		return nil, nil, nil, err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	eos, err := generate.StopTokens(dir, m.Cfg, tok)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, tok, eos, nil
}

// evaluateTest evaluates every checkpoint on the test split, one stage
// each ("test-<name>"); the first of them to run writes the test file.
func (r *recipe) evaluateTest(ctx context.Context, ckpts Checkpoints) ([]StageResult, error) {
	var rows []oracle.Row
	var out []StageResult
	for i, name := range ckpts.Names {
		var s StageResult
		err := r.stage(ctx, "test-"+name, &s, func() error {
			if rows == nil {
				path, err := r.writeTestFile()
				if err != nil {
					return err
				}
				if rows, err = oracle.ReadRows(path); err != nil {
					return fmt.Errorf("read test rows: %w", err)
				}
			}
			var err error
			s, err = r.evaluate(ctx, "test", name, ckpts.Dirs[i], rows)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// evaluate scores a model's greedy answers to rows: the ground truth and
// the reward's view (eval.Run).
func (r *recipe) evaluate(ctx context.Context, split, name, dir string, rows []oracle.Row) (StageResult, error) {
	t0 := time.Now()
	m, tok, eos, err := LoadModel(dir, r.opts.CPU)
	if err != nil {
		return StageResult{}, fmt.Errorf("evaluate %s: %w", name, err)
	}
	oc := oracle.DefaultConfig()
	oc.AlwaysRunOracle = true
	oc.CodeSec.NoCodeScore = r.cfg.RL.NoCodeScore
	scorer := oracle.NewScorer(r.an, r.sb, r.opts.Judge, oc)
	bar := r.out.Counter(split+"-"+name, "prompts", 1)
	scored, metrics, err := eval.Run(ctx, m, tok, scorer, rows, eval.Options{
		Prefix: r.cfg.RL.Prefix, MaxNewTokens: r.cfg.Eval.MaxNewTokens, EOS: eos, Sandbox: r.sb, OnProgress: bar.Update,
	})
	bar.Done()
	if err != nil {
		return StageResult{}, fmt.Errorf("evaluate %s on %s: %w", name, split, err)
	}
	if err := eval.WriteScored(filepath.Join(r.cfg.Out, "eval-"+split+"-"+name+".jsonl"), scored); err != nil {
		return StageResult{}, err
	}
	res := StageResult{Stage: eval.Stage{Name: name, Metrics: metrics}, Model: dir, Seconds: time.Since(t0).Seconds()}
	r.logf("eval %s on %s: insecure-variant %.1f%%, tests pass %.1f%%, harmful payload %.1f%%, malicious refusal %.1f%%, benign over-refusal %.1f%%, mean reward %.3f",
		name, split, 100*metrics.InsecureVariant, 100*metrics.TestsPass, 100*metrics.HarmfulPayload, 100*metrics.MaliciousRefusal, 100*metrics.BenignOverRefusal, metrics.Reward)
	return res, nil
}

func stageList(s []StageResult) []eval.Stage {
	out := make([]eval.Stage, len(s))
	for i := range s {
		out[i] = s[i].Stage
	}
	return out
}

// Summary is the run's stage summary in plain text: the world's sizes and
// the test and validation tables. It depends on nothing but the numbers.
func (res *Result) Summary() string {
	var b strings.Builder
	w := res.World
	fmt.Fprintf(&b, "world seed %d (corpus seed %d): %d train, %d validation, %d test prompts; test prompts in the pretraining corpus: %d\n",
		res.Seed, w.CorpusSeed, w.Train, w.Validation, w.Test, w.TestInCorpus)
	b.WriteString("\ntest split (ground truth; mean reward = the RL objective):\n")
	eval.TextTable(&b, stageList(res.Test))
	if len(res.Validation) > 0 {
		b.WriteString("\nvalidation split:\n")
		eval.TextTable(&b, stageList(res.Validation))
	}
	return b.String()
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

// writeJSON writes v as indented JSON.
func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
