package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/model/qwen2"
)

func TestPlanCommandRefusesInOneLine(t *testing.T) {
	var out, errb bytes.Buffer
	code := mainExit([]string{"plan", "--model", "qwen2.5-32b", "--gpus", "8", "--gpu-mem", "80GiB", "--tp", "8"}, &out, &errb)
	msg := errb.String()
	if code != 2 || out.Len() > 0 || strings.Count(msg, "\n") != 1 ||
		!strings.HasPrefix(msg, "purpcode plan: does not fit: needs ") || !strings.Contains(msg, "over by ") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line saying by how much", code, out.String(), msg)
	}
}

func TestPlanCommandPrintsPlanAndLoader(t *testing.T) {
	var out, errb bytes.Buffer
	code := mainExit([]string{"plan", "--model", "qwen2.5-7b", "--gpus", "8", "--gpu-mem", "80GiB",
		"--optimizer-offload", "--activation-checkpointing", "--micro-batch-tokens", "8192"}, &out, &errb)
	if code != 0 || errb.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	s := out.String()
	// 28 heads: the largest TP within 8 GPUs that divides them and 8 is 4.
	for _, want := range []string{"layout: 8 GPUs = TP 4 x DP 2", "KV cache: ", "host: ", "TP rank 3 reads "} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "TP rank 4 ") {
		t.Errorf("more loader lines than TP ranks:\n%s", s)
	}
}

// A model directory with weights: the loader section reads its index.
func TestPlanCommandReadsCheckpointRanges(t *testing.T) {
	cfgJSON := []byte(`{"model_type":"qwen2","hidden_size":16,"num_attention_heads":4,"num_key_value_heads":2,
		"intermediate_size":20,"vocab_size":40,"num_hidden_layers":2,"max_position_embeddings":64}`)
	cfg, err := qwen2.ParseConfig(cfgJSON, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	var named []checkpoint.Named
	for _, p := range qwen2.ParamSpecs(cfg) {
		named = append(named, checkpoint.Named{Name: p.Name, T: engine.New(p.Shape...).Convert(engine.BF16)})
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := checkpoint.WriteDir(dir, named, checkpoint.WriteOptions{MaxShardBytes: 2000, Files: map[string][]byte{"config.json": cfgJSON}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.IndexFileName)); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := mainExit([]string{"plan", "--model", dir, "--gpus", "2", "--gpu-mem", "1GiB", "--reserve", "0",
		"--seq", "64", "--micro-batch-tokens", "64"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "loader ("+dir+"):") || !strings.Contains(out.String(), "TP rank 1 reads ") {
		t.Errorf("no loader section for the checkpoint:\n%s", out.String())
	}
}

func TestPlanCommandBadModel(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainExit([]string{"plan", "--model", "no-such-model"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "not a preset ([qwen2.5-32b qwen2.5-7b])") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := mainExit([]string{"plan", "--model", "qwen2.5-7b", "--tp", "8"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--tp 8 does not divide num_attention_heads 28") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := mainExit([]string{"plan", "--model", "qwen2.5-7b", "--gpu-mem", "lots"}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `memory size "lots"`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
