package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"purpcode/eval"
	"purpcode/redteam"
	"purpcode/sandbox"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.golden from this run")

// allStages are the stages of a run with validation, in order.
const allStages = "world,validation-base,distill,sft,validation-sft,rl,validation-rl,test-base,test-sft,test-rl"

// TestSmokeRecipe runs the whole recipe on a tiny config and compares the
// stage summary with testdata/smoke.golden (go test ./recipe -run Smoke
// -rewrite writes it). The run is seeded and single-configuration, so the
// summary is the same on every run on one machine; the tuning stages run
// while the test file does not exist yet.
func TestSmokeRecipe(t *testing.T) {
	if _, err := os.Stat("../testdata/base-model/model.safetensors"); err != nil {
		t.Skipf("no embedded base model (run `make base-model`): %v", err)
	}
	if _, err := sandbox.New(sandbox.Options{Workers: 1}); err != nil {
		t.Skipf("sandbox unavailable, the recipe needs it for the correctness oracle: %v", err)
	}
	cfg, err := Load("testdata/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Out = t.TempDir()
	testFile := filepath.Join(cfg.Out, "heldout", redteam.FileTest)
	var stages []string
	var log bytes.Buffer
	res, err := Run(context.Background(), cfg, Options{Log: &log, OnStage: func(stage string) {
		stages = append(stages, stage)
		_, err := os.Stat(testFile)
		if !strings.HasPrefix(stage, "test-") && !os.IsNotExist(err) {
			t.Errorf("stage %s starts with the test file present (stat: %v)", stage, err)
		}
		if stage == "test-base" {
			// Tuning wrote nothing of the test split: no file of the run
			// so far holds a test row's id or prompt.
			assertNoTestRows(t, cfg)
		}
	}})
	if err != nil {
		t.Fatalf("recipe: %v\n%s", err, log.String())
	}
	if got, want := strings.Join(stages, ","), allStages; got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
	if _, err := os.Stat(testFile); err != nil {
		t.Errorf("the final evaluation did not write the test file: %v", err)
	}
	report, err := os.ReadFile(filepath.Join(cfg.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Test split (ground truth)", "mean reward", "contains other instances of the test templates", "Targets (after RL vs base)"} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if len(res.Test) != 3 || len(res.Validation) != 3 {
		t.Fatalf("stages: %d test, %d validation, want 3 each", len(res.Test), len(res.Validation))
	}
	for _, s := range res.Test {
		if s.Metrics.TruthCount["codesec"] == 0 || s.Metrics.TruthCount["general-safety"]+s.Metrics.TruthCount["noreject"] == 0 {
			t.Errorf("stage %s: ground truth counts %v", s.Name, s.Metrics.TruthCount)
		}
	}
	checkGolden(t, "testdata/smoke.golden", res.Summary())
}

// assertNoTestRows fails if a file under dir holds a test row's id or
// prompt.
func assertNoTestRows(t *testing.T, cfg Config) {
	t.Helper()
	r := &recipe{cfg: cfg}
	w, err := r.world()
	if err != nil {
		t.Fatal(err)
	}
	var needles [][]byte
	for _, row := range w.Test {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(row.Messages[0].Content); err != nil {
			t.Fatal(err)
		}
		needles = append(needles, []byte(`"`+row.ID+`"`), bytes.Trim(bytes.TrimSpace(b.Bytes()), `"`))
	}
	err = filepath.WalkDir(cfg.Out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".safetensors") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds test row data %q before the final evaluation", path, n)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *rewrite {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if got != string(want) {
		t.Errorf("stage summary differs from %s (rerun with -rewrite if the change is intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestPrefixWriterKeepsEveryLine(t *testing.T) {
	var out bytes.Buffer
	w := newPrefixWriter(&out, "  ")
	for _, chunk := range []string{"a\nb", "c\n", "\nd\n"} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("write %q: %d %v", chunk, n, err)
		}
	}
	if got, want := out.String(), "  a\n  bc\n  \n  d\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLimitRows(t *testing.T) {
	rows := make([]redteam.PromptRow, 10)
	for i := range rows {
		rows[i].ID = string(rune('a' + i))
	}
	var ids []string
	for _, r := range limitRows(rows, 4) {
		ids = append(ids, r.ID)
	}
	if got := strings.Join(ids, ""); got != "acfh" {
		t.Errorf("limitRows(10 rows, 4) = %s, want acfh (evenly spaced)", got)
	}
	if len(limitRows(rows, 0)) != 10 || len(limitRows(rows, 20)) != 10 {
		t.Error("limitRows with 0 or more than the rows must keep all")
	}
}

func TestCheckTargets(t *testing.T) {
	base := evalMetrics(0.9, 0.7, 0.1, 0)
	good := CheckTargets(base, evalMetrics(0.1, 0.69, 0.96, 0.04))
	bad := CheckTargets(base, evalMetrics(0.2, 0.6, 0.9, 0.1))
	for i := range good {
		if !good[i].Holds || bad[i].Holds {
			t.Errorf("target %s: holds %v on the good case, %v on the bad one", good[i].Name, good[i].Holds, bad[i].Holds)
		}
	}
}

func evalMetrics(insecure, pass, refusal, over float64) eval.Metrics {
	return eval.Metrics{InsecureVariant: insecure, TestsPass: pass, MaliciousRefusal: refusal, BenignOverRefusal: over}
}

// TestSweepResumesFinishedWorlds: a sweep reads the worlds that already
// finished and tabulates mean, min and max over them.
func TestSweepResumesFinishedWorlds(t *testing.T) {
	cfg := Default()
	cfg.Out = t.TempDir()
	for i, v := range []float64{0.2, 0.4} {
		seed := cfg.WorldSeed + uint64(i)
		res := &Result{Seed: seed, World: WorldStats{Test: 10, TestInCorpus: i}, Test: []StageResult{
			{Stage: eval.Stage{Name: "base", Metrics: evalMetrics(1, 0.7, 0.1, 0)}},
			{Stage: eval.Stage{Name: "rl", Metrics: evalMetrics(v, 0.7, 1, v/4)}},
		}}
		dir := filepath.Join(cfg.Out, "world-"+strconv.FormatUint(seed, 10))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(filepath.Join(dir, "stages.json"), res); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Sweep(context.Background(), cfg, 2, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(cfg.Out, "sweep.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| rl | 30.0% [20.0%, 40.0%] |", "- insecure-variant rate, relative change: -70%", "| 2 | 1/10 | 0/10 | -60% ✗ |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("sweep.md lacks %q:\n%s", want, md)
		}
	}
	if len(s.Worlds) != 2 || s.Worlds[1].Seed != 2 {
		t.Fatalf("worlds %+v", s.Worlds)
	}
}

// TestSweepCorpusHoldsNoTestPrompt: the sweep's base model corpus
// (configs/sweep.yaml, corpus_worlds 5) holds no test prompt of any of the
// five worlds verbatim, while the demo's corpus, decontaminated against
// world 1 only, holds some of world 2's. The 13-gram matches (template
// text shared with other instances) are logged, not asserted.
func TestSweepCorpusHoldsNoTestPrompt(t *testing.T) {
	sweep, err := Load("../configs/sweep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := Load("../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 5; seed++ {
		c := sweep
		c.WorldSeed = seed
		w, err := redteam.Generate(c.WorldOptions())
		if err != nil {
			t.Fatal(err)
		}
		if n := w.CorpusOverlap(w.Test); n != 0 {
			t.Errorf("world %d: %d of %d test prompts are in the sweep corpus verbatim", seed, n, len(w.Test))
		}
		t.Logf("world %d: 0/%d test prompts verbatim, %d/%d matched by 13-gram in the sweep corpus", seed, len(w.Test), NearCorpus(w, w.Test), len(w.Test))
	}
	demo.WorldSeed = 2
	w, err := redteam.Generate(demo.WorldOptions())
	if err != nil {
		t.Fatal(err)
	}
	if n := w.CorpusOverlap(w.Test); n == 0 {
		t.Errorf("world 2 in the demo corpus (decontaminated against world 1 only): no test prompt verbatim, want some (is corpus_worlds set in demo.yaml?)")
	}
}
