package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"purpcode/analyzer"
	"purpcode/engine"
	"purpcode/eval/suite"
	"purpcode/generate"
	"purpcode/internal/progress"
	"purpcode/sandbox"
)

// suiteMode reports whether `eval` was asked for the public suites
// (--suite or --compare) rather than the toy world's prompt files.
func suiteMode(args []string) bool {
	for _, a := range args {
		name := strings.TrimLeft(a, "-")
		if name == a {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if name == "suite" || name == "compare" {
			return true
		}
	}
	return false
}

// evalTarget is one model under test: a directory loaded in process or a
// model behind an endpoint.
type evalTarget struct {
	label      string
	dir        string
	url, model string
}

// splitLabel reads an optional "LABEL=" before a directory or URL (a label
// has no '/' or ':', so paths and URLs with '=' later stay whole).
func splitLabel(v string) (label, rest string) {
	if i := strings.IndexByte(v, '='); i > 0 && !strings.ContainsAny(v[:i], "/:") {
		return v[:i], v[i+1:]
	}
	return "", v
}

// evalTargets turns the --model, --endpoint and --endpoint-model values
// into labelled targets: --endpoint-model names one model for every
// endpoint or one per endpoint in order; --name labels a single target.
func evalTargets(models, endpoints, endpointModels []string, name string) ([]evalTarget, error) {
	var out []evalTarget
	for _, v := range models {
		label, dir := splitLabel(v)
		if label == "" {
			label = filepath.Base(filepath.Clean(dir))
		}
		out = append(out, evalTarget{label: label, dir: dir})
	}
	if len(endpoints) > 0 && len(endpointModels) != 1 && len(endpointModels) != len(endpoints) {
		return nil, fmt.Errorf("--endpoint-model: give one model name for every --endpoint or one per --endpoint (%d endpoints, %d names)", len(endpoints), len(endpointModels))
	}
	for i, v := range endpoints {
		label, url := splitLabel(v)
		model := endpointModels[min(i, len(endpointModels)-1)]
		if label == "" {
			label = model
		}
		out = append(out, evalTarget{label: label, url: url, model: model})
	}
	if name != "" {
		if len(out) != 1 {
			return nil, fmt.Errorf("--name labels a single model; with several, write --model LABEL=DIR or --endpoint LABEL=URL")
		}
		out[0].label = name
	}
	seen := map[string]string{}
	for _, t := range out {
		d := labelDir(t.label)
		if prev, ok := seen[d]; ok {
			return nil, fmt.Errorf("models %q and %q would share the results folder %q: label them with LABEL=", prev, t.label, d)
		}
		seen[d] = t.label
	}
	return out, nil
}

// labelDir is a label made safe as a folder name.
func labelDir(label string) string {
	b := []byte(label)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if s := string(b); s != "" && s != "." && s != ".." {
		return s
	}
	return "model"
}

// endpointFlags are the shared settings of every endpoint client.
type endpointFlags struct {
	concurrency, retries int
	timeout              time.Duration
}

func (f endpointFlags) open(ctx context.Context, url, model string, concurrency int) (*suite.Endpoint, error) {
	if model == "" {
		return nil, fmt.Errorf("endpoint %s: no model name given", url)
	}
	ep := &suite.Endpoint{URL: url, Model: model, Concurrency: concurrency, Retries: f.retries, Timeout: f.timeout}
	return ep, ep.Check(ctx)
}

// openCompleter loads a judge-side model in process, greedy with maxNew
// tokens per reply; close releases its engine.
func openCompleter(dir string, be engine.Backend, maxNew int) (c *generate.Completer, release func(), err error) {
	m, tok, eos, err := loadModelDir(dir, be)
	if err != nil {
		return nil, nil, err
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: 16, EOS: eos})
	if err != nil {
		return nil, nil, err
	}
	return generate.NewCompleter(eng, tok, generate.SamplingParams{Greedy: true, MaxNewTokens: maxNew}), eng.Close, nil
}

// judgeFlags choose the judge and, for the MITRE suite, the expansion model.
type judgeFlags struct {
	dir, url, model          string
	expDir, expURL, expModel string
	expMaxTokens             int
}

// judgeLabel names a judge in the results.
func judgeLabel(dir, endpointModel string) string {
	if dir != "" {
		return "judge:" + filepath.Base(filepath.Clean(dir))
	}
	return "judge:" + endpointModel
}

// openJudges sets opts' judge and expansion model from the flags; the
// returned function releases in-process ones. Without expansion flags the
// judge writes the MITRE expansion too, with --expansion-max-tokens.
func (jf judgeFlags) openJudges(ctx context.Context, opts *suite.Options, be engine.Backend, epf endpointFlags) (func(), error) {
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	// ownExpander is the judge's model with room for the long analysis.
	var ownExpander func() suite.Judge
	switch {
	case jf.dir != "":
		c, cl, err := openCompleter(jf.dir, be, 64)
		if err != nil {
			return closeAll, fmt.Errorf("judge model: %w", err)
		}
		closers = append(closers, cl)
		opts.Judge = c
		ownExpander = func() suite.Judge {
			return c.WithParams(generate.SamplingParams{Greedy: true, MaxNewTokens: jf.expMaxTokens})
		}
	case jf.url != "":
		ep, err := epf.open(ctx, jf.url, jf.model, 1)
		if err != nil {
			return closeAll, fmt.Errorf("judge: %w", err)
		}
		opts.Judge = &suite.EndpointJudge{Endpoint: ep}
		ownExpander = func() suite.Judge { return &suite.EndpointJudge{Endpoint: ep, MaxTokens: jf.expMaxTokens} }
	default:
		if jf.expDir != "" || jf.expURL != "" {
			return closeAll, fmt.Errorf("--expansion-model and --expansion-endpoint need a judge (--judge-model or --judge-endpoint)")
		}
		return closeAll, nil
	}
	opts.JudgeName = judgeLabel(jf.dir, jf.model)
	switch {
	case jf.expDir != "":
		c, cl, err := openCompleter(jf.expDir, be, jf.expMaxTokens)
		if err != nil {
			return closeAll, fmt.Errorf("expansion model: %w", err)
		}
		closers = append(closers, cl)
		opts.Expander, opts.ExpanderName = c, filepath.Base(filepath.Clean(jf.expDir))
	case jf.expURL != "":
		ep, err := epf.open(ctx, jf.expURL, jf.expModel, 1)
		if err != nil {
			return closeAll, fmt.Errorf("expansion model: %w", err)
		}
		opts.Expander, opts.ExpanderName = &suite.EndpointJudge{Endpoint: ep, MaxTokens: jf.expMaxTokens}, jf.expModel
	default:
		// No ExpanderName: the results say the judge expands and judges.
		opts.Expander = ownExpander()
	}
	return closeAll, nil
}

// runEvalSuite runs the paper's public suites (or JSONL suite files) on
// one or several models in process or behind endpoints, and writes
// results.json and report.md (several models: one folder each and a
// side-by-side report); with --compare it writes a comparison report of
// earlier runs.
func runEvalSuite(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	suites := fs.String("suite", "", "suites: `names` ("+strings.Join(suite.Names(), ", ")+"), all, or .jsonl suite files, comma-separated")
	var modelDirs, endpoints, endpointModels []string
	fs.Var(listFlag{&modelDirs}, "model", "model `[LABEL=]dir` evaluated in process (repeatable: several models are compared side by side)")
	fs.Var(listFlag{&endpoints}, "endpoint", "OpenAI-compatible API base `[LABEL=]URL` (e.g. http://127.0.0.1:8000/v1; repeatable, combinable with --model)")
	fs.Var(listFlag{&endpointModels}, "endpoint-model", "model `name` at --endpoint: one for all endpoints, or one per --endpoint in order")
	concurrency := fs.Int("concurrency", 8, "requests in flight to an endpoint")
	retries := fs.Int("retries", 4, "retries of a failed endpoint request (exponential back-off)")
	reqTimeout := fs.Duration("request-timeout", 10*time.Minute, "time limit of one endpoint request")
	var jf judgeFlags
	fs.StringVar(&jf.dir, "judge-model", "", "judge model `dir` (refusal and MITRE suites; default: string match)")
	fs.StringVar(&jf.url, "judge-endpoint", "", "judge at an OpenAI-compatible API base `URL`")
	fs.StringVar(&jf.model, "judge-endpoint-model", "", "model `name` at --judge-endpoint")
	fs.StringVar(&jf.expDir, "expansion-model", "", "MITRE expansion model `dir` (CyberSecEval's first judging step; default: the judge)")
	fs.StringVar(&jf.expURL, "expansion-endpoint", "", "MITRE expansion model at an OpenAI-compatible API base `URL`")
	fs.StringVar(&jf.expModel, "expansion-endpoint-model", "", "model `name` at --expansion-endpoint")
	fs.IntVar(&jf.expMaxTokens, "expansion-max-tokens", 512, "tokens of a MITRE expansion")
	dataDir := fs.String("suite-data", "", "suite data `dir` (layout of ../shared/refs/bench; default: the vendored copies)")
	limit := fs.Int("limit", 0, "`N` items of each suite, evenly spread over it (0: all)")
	system := fs.String("system-prompt", "none", "system prompt: none, paper (the paper's option), or a file `path`")
	maxTokens := fs.Int("max-tokens", 512, "tokens per answer")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	batch := fs.Int("batch", 16, "sequences decoded at once in process")
	out := fs.String("out", "", "results `dir` (results.json, report.md, charts, cache.jsonl; one sub-folder per model when there are several)")
	name := fs.String("name", "", "model label in the report (one model; default: the model dir or endpoint model)")
	compare := fs.String("compare", "", "comma-separated results `dirs` of earlier runs: write a comparison report to --out")
	cpu := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(stderr, "purpcode eval: --out is required with --suite or --compare")
		return errUsage
	}
	if *compare != "" {
		return compareReports(*compare, *out, stdout)
	}
	if *suites == "" || len(modelDirs)+len(endpoints) == 0 {
		fmt.Fprintln(stderr, "purpcode eval: --suite needs at least one --model or --endpoint")
		return errUsage
	}
	if jf.expMaxTokens <= 0 {
		return fmt.Errorf("--expansion-max-tokens %d: must be positive", jf.expMaxTokens)
	}
	targets, err := evalTargets(modelDirs, endpoints, endpointModels, *name)
	if err != nil {
		return err
	}
	sysPrompt, err := systemPrompt(*system)
	if err != nil {
		return err
	}
	fsys := suite.DataFS(*dataDir)
	var loaded []*suite.Suite
	names := strings.Split(*suites, ",")
	if *suites == "all" {
		names = suite.Names()
	}
	needSandbox, needSecure := false, false
	for _, n := range names {
		s, err := suite.Load(fsys, strings.TrimSpace(n))
		if err != nil {
			return err
		}
		for _, it := range s.Items {
			needSandbox = needSandbox || it.Scorer == suite.ScorerEvalPlus
			needSecure = needSecure || it.Scorer == suite.ScorerSecureCode
		}
		loaded = append(loaded, s)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := suite.Options{
		System: sysPrompt, Limit: *limit,
		Sampling: suite.Sampling{MaxTokens: *maxTokens, Temperature: *temp, Seed: *seed},
		Progress: suiteProgress(progress.New(stderr)),
	}
	if needSandbox {
		if opts.Sandbox, err = sandbox.New(sandbox.Options{}); err != nil {
			return fmt.Errorf("the HumanEval+/MBPP+ suites run answers in the sandbox: %w", err)
		}
	}
	if needSecure {
		an, err := analyzer.New()
		if err != nil {
			return err
		}
		defer an.Close()
		if opts.Secure, err = suite.NewSecureChecker(fsys, an); err != nil {
			return err
		}
		for _, s := range opts.Secure.SemgrepSkipped() {
			fmt.Fprintln(stderr, "purpcode eval: ICD semgrep rule not applied (outside the supported subset):", s)
		}
	}
	cpuBackend, err := cpu.cpuOnly("eval-suite")
	if err != nil {
		return err
	}
	epf := endpointFlags{concurrency: *concurrency, retries: *retries, timeout: *reqTimeout}
	closeJudges, err := jf.openJudges(ctx, &opts, cpuBackend, epf)
	defer closeJudges()
	if err != nil {
		return err
	}

	var all []suite.Labelled
	for _, t := range targets {
		dir := *out
		if len(targets) > 1 {
			dir = filepath.Join(*out, labelDir(t.label))
		}
		res, err := evalOne(ctx, t, loaded, opts, dir, cpuBackend, *batch, epf)
		if err != nil {
			return fmt.Errorf("%s: %w", t.label, err)
		}
		all = append(all, suite.Labelled{Name: t.label, Results: res})
		if len(targets) > 1 {
			fmt.Fprintf(stdout, "%s: results %s\n", t.label, filepath.Join(dir, "results.json"))
			continue
		}
		for _, sr := range res.Suites {
			fmt.Fprintf(stdout, "%-26s %4d items %4d errors", sr.Name, sr.Items, sr.Errors)
			for _, k := range sortedMetricKeys(sr.Metrics) {
				fmt.Fprintf(stdout, "  %s %.3f", k, sr.Metrics[k])
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "results: %s, report: %s\n", filepath.Join(dir, "results.json"), filepath.Join(dir, "report.md"))
	}
	if len(all) > 1 {
		if err := suite.WriteReport(*out, all); err != nil {
			return err
		}
		for _, s := range loaded {
			fmt.Fprintf(stdout, "\n%s\n%s", s.Name, suite.SuiteTable(all, s.Name))
		}
		fmt.Fprintf(stdout, "\ncomparison report: %s\n", filepath.Join(*out, "report.md"))
	}
	return nil
}

// evalOne answers and scores the suites with one model and writes its
// results.json and report.md to dir (its answers cached in
// dir/cache.jsonl).
func evalOne(ctx context.Context, t evalTarget, loaded []*suite.Suite, opts suite.Options, dir string,
	be engine.Backend, batch int, epf endpointFlags) (*suite.Results, error) {
	var gen suite.Generator
	if t.dir != "" {
		m, tok, eos, err := loadModelDir(t.dir, be)
		if err != nil {
			return nil, err
		}
		e, err := suite.NewEngine(m, tok, eos, t.dir, batch)
		if err != nil {
			return nil, err
		}
		defer e.Close()
		gen = e
	} else {
		ep, err := epf.open(ctx, t.url, t.model, epf.concurrency)
		if err != nil {
			return nil, err
		}
		gen = ep
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	cache, err := suite.OpenCache(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	opts.Cache = cache
	res, err := suite.Run(ctx, gen, loaded, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (answers so far are cached in %s; rerun to resume)", err, filepath.Join(dir, "cache.jsonl"))
	}
	if err := suite.WriteResults(dir, res); err != nil {
		return nil, err
	}
	if err := suite.WriteReport(dir, []suite.Labelled{{Name: t.label, Results: res}}); err != nil {
		return nil, err
	}
	return res, nil
}

func systemPrompt(v string) (string, error) {
	switch v {
	case "none", "":
		return "", nil
	case "paper":
		return suite.PaperSystemPrompt, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return "", fmt.Errorf("--system-prompt: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func compareReports(dirs, out string, stdout io.Writer) error {
	var models []suite.Labelled
	for _, d := range strings.Split(dirs, ",") {
		d = strings.TrimSpace(d)
		r, err := suite.ReadResults(d)
		if err != nil {
			return err
		}
		models = append(models, suite.Labelled{Name: filepath.Base(filepath.Clean(d)), Results: r})
	}
	if err := suite.WriteReport(out, models); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "comparison report: %s\n", filepath.Join(out, "report.md"))
	return nil
}

func sortedMetricKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suiteProgress shows a progress bar per suite. suite.Run reports one
// suite at a time, never concurrently, so the map needs no lock; a suite's
// rate counts from its first scored item.
func suiteProgress(out *progress.Output) func(string, int, int) {
	bars := map[string]*progress.Counter{}
	return func(name string, done, total int) {
		c := bars[name]
		if c == nil {
			c = out.Counter(name, "items", 1)
			bars[name] = c
		}
		c.Update(done, total)
		if done >= total {
			c.Done()
		}
	}
}
