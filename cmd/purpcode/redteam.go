package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"purpcode/analyzer"
	"purpcode/eval/suite"
	"purpcode/generate"
	"purpcode/internal/progress"
	"purpcode/redteam"
	"purpcode/redteam/pipeline"
)

const redteamAbout = "Internal red-teaming: Rule2Code (the analyzer's rules and --cwe-file entries -> vulnerable\n" +
	"snippets, kept only when the analyzer flags them for that rule), Vul2Prompt (snippets -> coding\n" +
	"requests by three strategies, oracle codesec), malicious seeds x jailbreak transforms (general-safety)\n" +
	"and benign seeds (noreject); decontaminated against every built-in evaluation suite (13-gram and\n" +
	"MinHash) and deduplicated (MinHash + LSH). Writes prompts.jsonl (read by distill and rl as is),\n" +
	"seeds.jsonl, dropped.jsonl and manifest.json to --out. Interrupted runs continue when rerun with\n" +
	"the same flags; `purpcode redteam stats DIR` prints the manifest's tables."

// runRedteam is `purpcode redteam` and `purpcode redteam stats`.
func runRedteam(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "stats" {
		return runRedteamStats(args[1:], stdout, stderr)
	}
	in, stop := notifyInterrupt()
	defer stop()
	return redteamMain(in, args, stdout, stderr, func() error { return in.exit() })
}

func redteamMain(ctx context.Context, args []string, stdout, stderr io.Writer, interrupted func() error) error {
	fs := newFlags("redteam", stderr)
	out := fs.String("out", "", "output `dir` (a rerun with the same flags continues an interrupted run)")
	endpoint := fs.String("generator-endpoint", "", "OpenAI-compatible API base `URL` of the generator, e.g. http://127.0.0.1:8000/v1 (`purpcode serve`, vLLM, a hosted API)")
	modelName := fs.String("generator-model-name", "", "model name sent to the endpoint (default: the first one its /models lists)")
	modelDir := fs.String("generator-model", "", "Hugging Face model `dir` run in this process as the generator (instead of --generator-endpoint), batched through the rollout engine")
	dev := addCPUFlags(fs)
	cweFile := fs.String("cwe-file", "", "extra Rule2Code catalog: JSONL of {\"id\":\"CWE-N\",\"name\",\"description\",\"bad\"?,\"good\"?}")
	ruleIDs := fs.String("rules", "", "comma-separated analyzer rule ids for Rule2Code (default: every rule of medium severity or above; \"none\": only --cwe-file)")
	malFile := fs.String("malicious", "", "malicious seed requests: JSONL {\"id\",\"prompt\",\"topic\"?} or one request per line (default: the toy world's train split)")
	benFile := fs.String("benign", "", "benign-but-scary seed requests, same formats (default: the toy world's train split)")
	worldSeed := fs.Uint64("world-seed", 1, "seed of the toy world that supplies default seed requests")
	samples := fs.Int("samples-per-rule", 4, "Rule2Code generations per rule")
	perStrategy := fs.Int("prompts-per-strategy", 1, "Vul2Prompt generations per verified snippet and strategy")
	strategies := fs.String("strategies", strings.Join(pipeline.Strategies(), ","), "Vul2Prompt strategies")
	transforms := fs.String("transforms", strings.Join(transformNames(), ","), "jailbreak transforms of each malicious seed (\"plain\": the seed itself)")
	seed := fs.Uint64("seed", 1, "run seed; each request's sampling seed derives from it and the item")
	temp := fs.Float64("temperature", 0.8, "generator sampling temperature")
	maxTokens := fs.Int("max-tokens", 512, "generator max tokens per reply")
	conc := fs.Int("concurrency", 8, "generator requests in flight")
	retries := fs.Int("retries", 3, "retries of a failed request (network errors, timeouts, 429, 5xx, malformed replies)")
	timeout := fs.Duration("timeout", 5*time.Minute, "limit of one generator request")
	threshold := fs.Float64("dedup-threshold", 0.7, "MinHash near-duplicate Jaccard threshold (word 5-shingles)")
	suites := fs.String("decontam-suites", "all", "evaluation suites to decontaminate against: all, none, or a comma-separated list of names and .jsonl suite files")
	evalData := fs.String("eval-data", "", "suite data `dir` (default: the vendored copies)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || (*endpoint == "") == (*modelDir == "") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "purpcode redteam: --out and one of --generator-endpoint or --generator-model are required, and no positional arguments are accepted")
		return errUsage
	}
	var gen pipeline.Generator
	where := *endpoint
	if *modelDir != "" {
		mg, closeGen, err := openModelGenerator(*modelDir, dev, *conc, stderr)
		if err != nil {
			return err
		}
		defer closeGen()
		gen, where = mg, *modelDir
	} else {
		ep := &pipeline.Endpoint{URL: *endpoint, Model: *modelName, Retries: *retries, Backoff: 500 * time.Millisecond, Timeout: *timeout,
			Client: &http.Client{}}
		if ep.Model == "" {
			name, err := firstModel(ctx, *endpoint)
			if err != nil {
				return err
			}
			ep.Model = name
		}
		gen = ep
	}
	an, err := analyzer.New()
	if err != nil {
		return fmt.Errorf("analyzer: %w", err)
	}
	defer an.Close()
	rules, err := redteamRules(an, *ruleIDs, *cweFile)
	if err != nil {
		return err
	}
	mal, ben, err := redteamSeeds(*malFile, *benFile, *worldSeed)
	if err != nil {
		return err
	}
	evalSets, err := decontamSets(*suites, *evalData)
	if err != nil {
		return err
	}
	tf := splitList(*transforms)
	for i, t := range tf {
		if t == "plain" {
			tf[i] = redteam.JailbreakNone
		}
	}
	o := progress.New(stderr)
	bars := map[string]*progress.Bar{}
	var barMu sync.Mutex
	cfg := pipeline.Config{
		Out: *out, Generator: gen, Analyzer: an, Rules: rules, Malicious: mal, Benign: ben, Eval: evalSets,
		SamplesPerRule: *samples, PromptsPerStrategy: *perStrategy, Strategies: splitList(*strategies), Transforms: tf,
		Sampling:    pipeline.Sampling{Seed: *seed, Temperature: *temp, MaxTokens: *maxTokens},
		Concurrency: *conc,
		Progress: func(stage string, done, total, accepted int) {
			barMu.Lock()
			defer barMu.Unlock()
			b, ok := bars[stage]
			if !ok {
				b = o.Start(stage, "items", int64(done), int64(total))
				bars[stage] = b
			}
			b.Set(int64(done), fmt.Sprintf("accepted %d (%.0f%%)", accepted, 100*float64(accepted)/float64(max(done, 1))))
			if done == total {
				b.Done()
			}
		},
	}
	cfg.Dedup.Threshold = *threshold
	fmt.Fprintf(stderr, "redteam: %d rules, %d malicious and %d benign seeds, %d evaluation prompts; generator %s (%s)\n",
		len(rules), len(mal), len(ben), countPrompts(evalSets), gen.Name(), where)
	man, err := pipeline.Run(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "redteam: interrupted; finished items are kept in %s, rerun the same command to continue\n", filepath.Join(*out, "work"))
			return interrupted()
		}
		return err
	}
	if err := pipeline.WriteStats(stdout, man); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", filepath.Join(*out, pipeline.FilePrompts))
	return nil
}

// openModelGenerator loads dir on the backend the device flags choose and
// wraps it in a batching in-process generator.
func openModelGenerator(dir string, dev *cpuFlags, batch int, stderr io.Writer) (*pipeline.ModelGenerator, func(), error) {
	be, closeBE, err := dev.backend(stderr)
	if err != nil {
		return nil, nil, err
	}
	m, tok, eos, err := loadModelDir(dir, be)
	if err != nil {
		closeBE()
		return nil, nil, fmt.Errorf("--generator-model: %w", err)
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: batch, EOS: eos, Decode: func(ids []int) string { return tok.Decode(ids, true) }})
	if err != nil {
		closeBE()
		return nil, nil, fmt.Errorf("--generator-model: %w", err)
	}
	g := pipeline.NewModelGenerator(eng, tok, filepath.Base(filepath.Clean(dir)))
	return g, func() { g.Close(); eng.Close(); closeBE() }, nil
}

// runRedteamStats prints a run's manifest tables.
func runRedteamStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("redteam stats", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "purpcode redteam stats: want one argument, the output directory or its manifest.json")
		return errUsage
	}
	path := fs.Arg(0)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, pipeline.FileManifest)
	}
	m, err := pipeline.ReadManifest(path)
	if err != nil {
		return err
	}
	return pipeline.WriteStats(stdout, m)
}

func transformNames() []string {
	var out []string
	for _, k := range redteam.TransformKinds() {
		if k == redteam.JailbreakNone {
			k = "plain"
		}
		out = append(out, k)
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// firstModel asks the endpoint which model it serves.
func firstModel(ctx context.Context, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/models", nil)
	if err != nil {
		return "", fmt.Errorf("generator endpoint %s: %w", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("generator endpoint %s is unreachable: %w", base, err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list); err != nil || resp.StatusCode != http.StatusOK || len(list.Data) == 0 {
		return "", fmt.Errorf("generator endpoint %s: GET /models gave status %d and no model (%v); pass --generator-model-name", base, resp.StatusCode, err)
	}
	return list.Data[0].ID, nil
}

// redteamRules builds the Rule2Code catalog.
func redteamRules(an *analyzer.Analyzer, ids, cweFile string) ([]pipeline.Rule, error) {
	all := pipeline.AnalyzerRules(an.Rules(), analyzer.Medium)
	var rules []pipeline.Rule
	switch ids {
	case "":
		rules = all
	case "none":
	default:
		byID := map[string]pipeline.Rule{}
		for _, r := range pipeline.AnalyzerRules(an.Rules(), analyzer.Low) {
			byID[r.ID] = r
		}
		for _, id := range splitList(ids) {
			r, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("--rules: the analyzer has no rule %q", id)
			}
			rules = append(rules, r)
		}
	}
	if cweFile != "" {
		extra, err := pipeline.ReadRules(cweFile)
		if err != nil {
			return nil, err
		}
		rules = append(rules, extra...)
	}
	return rules, nil
}

// redteamSeeds reads the seed files, or takes the toy world's train split.
func redteamSeeds(malFile, benFile string, worldSeed uint64) (mal, ben []pipeline.Seed, err error) {
	if malFile == "" || benFile == "" {
		o := redteam.DefaultOptions()
		o.Seed, o.CorpusSeed = worldSeed, worldSeed
		w, err := redteam.Generate(o)
		if err != nil {
			return nil, nil, fmt.Errorf("toy world: %w", err)
		}
		mal, ben = pipeline.WorldSeeds(w)
	}
	if malFile != "" {
		if mal, err = pipeline.ReadSeeds(malFile, "mal"); err != nil {
			return nil, nil, err
		}
	}
	if benFile != "" {
		if ben, err = pipeline.ReadSeeds(benFile, "ben"); err != nil {
			return nil, nil, err
		}
	}
	return mal, ben, nil
}

// decontamSets loads the evaluation prompts: each item's user turns.
func decontamSets(list, dataDir string) (map[string][]string, error) {
	names := splitList(list)
	switch {
	case list == "none":
		return nil, nil
	case list == "all":
		names = suite.Names()
	}
	fsys := suite.DataFS(dataDir)
	out := map[string][]string{}
	for _, n := range names {
		s, err := suite.Load(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("--decontam-suites: %w", err)
		}
		for i := range s.Items {
			var parts []string
			for _, m := range s.Items[i].Chat("") {
				if m.Role == "user" {
					parts = append(parts, m.Content)
				}
			}
			out[s.Name] = append(out[s.Name], strings.Join(parts, "\n"))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--decontam-suites: no suite named")
	}
	return out, nil
}

func countPrompts(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
