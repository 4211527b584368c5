package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"purpcode/engine"
	"purpcode/generate"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// openBaseModel starts a ModelGenerator on the embedded base model with
// batches of up to batch calls.
func openBaseModel(t *testing.T, batch int) *ModelGenerator {
	t.Helper()
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "base-model")
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Skipf("no embedded base model at %s (run `make base-model`): %v", dir, err)
	}
	be := engine.NewDefaultCPU(engine.CPUOptions{})
	m, err := qwen2.Load(dir, be)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eos, err := generate.StopTokens(dir, m.Cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: batch, EOS: eos, Decode: func(ids []int) string { return tok.Decode(ids, true) }})
	if err != nil {
		t.Fatal(err)
	}
	g := NewModelGenerator(eng, tok, "base-model")
	t.Cleanup(func() { g.Close(); eng.Close() })
	return g
}

// TestModelGenerator runs the pipeline on the embedded base model in
// process, once with batches of 4 and once one call at a time: the rows
// (poor text, real mechanics) are the same, because each reply depends on
// its item's seed only.
func TestModelGenerator(t *testing.T) {
	var files []map[string][]byte
	for _, batch := range []int{4, 1} {
		dir := t.TempDir()
		cfg := testConfig(t, dir, openBaseModel(t, batch))
		cfg.Rules, cfg.SamplesPerRule, cfg.Concurrency = cfg.Rules[:2], 3, batch
		cfg.Sampling.MaxTokens = 96
		m, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkArithmetic(t, dir, m)
		if m.Stages[0].Done != 6 || m.Config.Generator != "model:base-model" {
			t.Errorf("rule2code did %d items with %s", m.Stages[0].Done, m.Config.Generator)
		}
		files = append(files, readAll(t, dir))
	}
	for _, name := range []string{FilePrompts, FileSeeds, FileDropped, FileManifest} {
		if string(files[0][name]) != string(files[1][name]) {
			t.Errorf("%s differs between batched and one-at-a-time decoding", name)
		}
	}
}
