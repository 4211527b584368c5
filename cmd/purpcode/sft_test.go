package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/train/sft"
)

func TestSFTConfigFileAndFlagOverrides(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "run.yaml")
	os.WriteFile(yml, []byte("model: m\ndata: [a.jsonl]\nout: o\nlr: 0.1\nseq_len: 128\npack: true\nwarmup: 7\n"), 0o644)
	var stderr bytes.Buffer
	cfg, _, err := sftConfig([]string{"--config", yml, "--seq-len", "64", "--data", "b.jsonl,c.jsonl", "--data", "d.jsonl", "--pack=false"}, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := sft.DefaultConfig()
	want.Model, want.Out, want.LR, want.Warmup = "m", "o", 0.1, 7 // from the file
	want.SeqLen, want.Pack = 64, false                            // flags override the file
	want.Data = []string{"b.jsonl", "c.jsonl", "d.jsonl"}
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", want) {
		t.Errorf("config\n%+v\nwant\n%+v", cfg, want)
	}
	// Unknown YAML keys and invalid values are reported by name.
	os.WriteFile(yml, []byte("model: m\ndata: [a]\nout: o\nlearning_rate: 1\n"), 0o644)
	if _, _, err := sftConfig([]string{"--config", yml}, &stderr); err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Errorf("unknown key: %v", err)
	}
	_, _, err = sftConfig([]string{"--model", "m", "--data", "a", "--out", "o", "--schedule", "step", "--micro-batch", "0"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), `schedule: "step"`) || !strings.Contains(err.Error(), "micro_batch: 0") {
		t.Errorf("invalid values: %v", err)
	}
	if _, _, err := sftConfig([]string{"--data", "a"}, &stderr); err == nil || !strings.Contains(err.Error(), "model: missing") {
		t.Errorf("missing model: %v", err)
	}
	if _, _, err := sftConfig([]string{"--no-such-flag"}, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("unknown flag: %v, want errUsage", err)
	}
}

// TestSFTCommandEndToEnd trains a tiny model through the CLI, then resumes
// the finished run.
func TestSFTCommandEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":32,"max_position_embeddings":32}`), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	if err := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 1).Save(model, qwen2.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for i := 0; i < 6; i++ {
		rows = append(rows, fmt.Sprintf(`{"input_ids":[1,%d,3,%d,5],"labels":[-100,%d,3,%d,5]}`, i+2, i+6, i+2, i+6))
	}
	dataPath := filepath.Join(dir, "d.jsonl")
	os.WriteFile(dataPath, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "out")
	args := []string{"sft", "--model", model, "--data", dataPath, "--out", out, "--seq-len", "16", "--micro-batch", "2",
		"--max-steps", "3", "--save-every", "2", "--keep", "1", "--lr", "1e-3", "--pack"}
	var stdout, stderr bytes.Buffer
	if code := mainExit(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "steps 3") || !strings.Contains(stdout.String(), "checkpoint-3") {
		t.Errorf("stdout %q", stdout.String())
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"checkpoint-3", "metrics.jsonl"}) {
		t.Errorf("out holds %v, want checkpoint-3 and metrics.jsonl (keep 1)", names)
	}
	stdout.Reset()
	if code := mainExit(append(args, "--resume"), &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "already complete") {
		t.Errorf("resume of a finished run: exit %d\n%s", code, stderr.String())
	}
	if code := mainExit(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--resume") {
		t.Errorf("fresh run over an existing one: exit %d", code)
	}
}

// TestSFTStepThenScore: one SGD step (lr 1) on the reference batch, then
// `purpcode score` on the saved checkpoint reports the loss of the
// reference weights minus the reference gradient.
func TestSFTStepThenScore(t *testing.T) {
	ref := testref.Dir(t, "qwen2-tiny")
	out := filepath.Join(t.TempDir(), "out")
	batch := filepath.Join(ref, "batch.jsonl")
	var stdout, stderr bytes.Buffer
	args := []string{"sft", "--model", ref, "--data", batch, "--out", out, "--seq-len", "24", "--micro-batch", "2",
		"--optimizer", "sgd", "--lr", "1", "--schedule", "constant", "--clip", "0", "--weight-decay", "0", "--max-steps", "1"}
	if code := mainExit(args, &stdout, &stderr); code != 0 {
		t.Fatalf("sft exit %d\n%s", code, stderr.String())
	}
	stdout.Reset()
	if code := mainExit([]string{"score", "--model", filepath.Join(out, "checkpoint-1"), "--data", batch, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("score exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var got struct {
		MeanLoss float64 `json:"mean_loss"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatal(err)
	}
	// Expected: reference weights minus the PyTorch float64 gradient.
	m, err := qwen2.Load(ref, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	g, err := checkpoint.Open(filepath.Join(ref, "expected_grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, p := range m.P.List {
		gt, err := g.Tensor(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range gt.ToF32() {
			p.W.F32[i] -= v
		}
	}
	stdout.Reset()
	want := filepath.Join(t.TempDir(), "want")
	if err := m.Save(want, qwen2.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if code := mainExit([]string{"score", "--model", want, "--data", batch, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("score exit %d\n%s", code, stderr.String())
	}
	lines = strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var exp struct {
		MeanLoss float64 `json:"mean_loss"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &exp); err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.MeanLoss-exp.MeanLoss) > 1e-5*exp.MeanLoss {
		t.Errorf("score of the trained checkpoint %.8f, of reference weights - g_ref %.8f", got.MeanLoss, exp.MeanLoss)
	}
	t.Logf("new loss %.8f (reference %.8f)", got.MeanLoss, exp.MeanLoss)
}
