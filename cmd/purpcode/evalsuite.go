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

// runEvalSuite runs the paper's public suites (or JSONL suite files) on a
// model in process or behind an endpoint, and writes results.json and
// report.md; with --compare it writes a comparison report of earlier runs.
func runEvalSuite(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	suites := fs.String("suite", "", "suites: `names` ("+strings.Join(suite.Names(), ", ")+"), all, or .jsonl suite files, comma-separated")
	modelDir := fs.String("model", "", "model `dir` evaluated in process")
	endpoint := fs.String("endpoint", "", "OpenAI-compatible API base `URL` (e.g. http://127.0.0.1:8000/v1) instead of --model")
	endpointModel := fs.String("endpoint-model", "", "model `name` at --endpoint")
	concurrency := fs.Int("concurrency", 8, "requests in flight to an endpoint")
	retries := fs.Int("retries", 4, "retries of a failed endpoint request (exponential back-off)")
	reqTimeout := fs.Duration("request-timeout", 10*time.Minute, "time limit of one endpoint request")
	judgeDir := fs.String("judge-model", "", "judge model `dir` (refusal and MITRE suites; default: string match)")
	judgeEndpoint := fs.String("judge-endpoint", "", "judge at an OpenAI-compatible API base `URL`")
	judgeEndpointModel := fs.String("judge-endpoint-model", "", "model `name` at --judge-endpoint")
	dataDir := fs.String("suite-data", "", "suite data `dir` (layout of ../shared/refs/bench; default: the vendored copies)")
	limit := fs.Int("limit", 0, "`N` items of each suite, evenly spread over it (0: all)")
	system := fs.String("system-prompt", "none", "system prompt: none, paper (the paper's option), or a file `path`")
	maxTokens := fs.Int("max-tokens", 512, "tokens per answer")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	batch := fs.Int("batch", 16, "sequences decoded at once in process")
	out := fs.String("out", "", "results `dir` (results.json, report.md, charts, cache.jsonl)")
	name := fs.String("name", "", "model label in the report (default: the model dir or endpoint model)")
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
	if *suites == "" || (*modelDir == "") == (*endpoint == "") {
		fmt.Fprintln(stderr, "purpcode eval: --suite needs exactly one of --model and --endpoint")
		fs.Usage()
		return errUsage
	}
	if *endpoint != "" && *endpointModel == "" {
		return fmt.Errorf("--endpoint needs --endpoint-model")
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
	}
	cpuBackend, err := cpu.cpuOnly("eval-suite")
	if err != nil {
		return err
	}
	switch {
	case *judgeDir != "":
		m, tok, eos, err := loadModelDir(*judgeDir, cpuBackend)
		if err != nil {
			return fmt.Errorf("judge model: %w", err)
		}
		eng, err := generate.New(m, generate.Options{MaxBatch: 16, EOS: eos})
		if err != nil {
			return fmt.Errorf("judge model: %w", err)
		}
		defer eng.Close()
		opts.Judge = generate.NewCompleter(eng, tok, generate.SamplingParams{Greedy: true, MaxNewTokens: 64})
		opts.JudgeName = "judge:" + filepath.Base(filepath.Clean(*judgeDir))
	case *judgeEndpoint != "":
		ep := &suite.Endpoint{URL: *judgeEndpoint, Model: *judgeEndpointModel, Concurrency: 1, Retries: *retries, Timeout: *reqTimeout}
		if err := ep.Check(ctx); err != nil {
			return fmt.Errorf("judge: %w", err)
		}
		opts.Judge = &suite.EndpointJudge{Endpoint: ep}
		opts.JudgeName = "judge:" + *judgeEndpointModel
	}

	var gen suite.Generator
	label := *name
	if *modelDir != "" {
		m, tok, eos, err := loadModelDir(*modelDir, cpuBackend)
		if err != nil {
			return err
		}
		e, err := suite.NewEngine(m, tok, eos, *modelDir, *batch)
		if err != nil {
			return err
		}
		defer e.Close()
		gen = e
		if label == "" {
			label = filepath.Base(filepath.Clean(*modelDir))
		}
	} else {
		ep := &suite.Endpoint{URL: *endpoint, Model: *endpointModel, Concurrency: *concurrency, Retries: *retries, Timeout: *reqTimeout}
		if err := ep.Check(ctx); err != nil {
			return err
		}
		gen = ep
		if label == "" {
			label = *endpointModel
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	cache, err := suite.OpenCache(filepath.Join(*out, "cache.jsonl"))
	if err != nil {
		return err
	}
	defer cache.Close()
	opts.Cache = cache
	res, err := suite.Run(ctx, gen, loaded, opts)
	if err != nil {
		return fmt.Errorf("%w (answers so far are cached in %s; rerun to resume)", err, filepath.Join(*out, "cache.jsonl"))
	}
	if err := suite.WriteResults(*out, res); err != nil {
		return err
	}
	if err := suite.WriteReport(*out, []suite.Labelled{{Name: label, Results: res}}); err != nil {
		return err
	}
	for _, sr := range res.Suites {
		fmt.Fprintf(stdout, "%-26s %4d items %4d errors", sr.Name, sr.Items, sr.Errors)
		for _, k := range sortedMetricKeys(sr.Metrics) {
			fmt.Fprintf(stdout, "  %s %.3f", k, sr.Metrics[k])
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "results: %s, report: %s\n", filepath.Join(*out, "results.json"), filepath.Join(*out, "report.md"))
	return nil
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
