package sft

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

const tinyConfig = `{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":64,"max_position_embeddings":64,
"rope_theta":10000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`

// testCPU is the backend of every test here; a fixed fan-out keeps results
// identical between the test process and its helper subprocesses.
func testCPU() *engine.CPU { return engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}) }

// writeTinyModel saves a random tiny Qwen2 model as an HF dir.
func writeTinyModel(t testing.TB, dir string, seed uint64) *qwen2.Model {
	t.Helper()
	cfg, err := qwen2.ParseConfig([]byte(tinyConfig), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m := qwen2.New(cfg, testCPU(), seed)
	if err := m.Save(dir, qwen2.SaveOptions{DType: engine.F32, Files: map[string][]byte{"tokenizer.json": []byte(`{"stand-in":true}`)}}); err != nil {
		t.Fatal(err)
	}
	return m
}

type tokRow struct {
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

// synthRows makes n pre-tokenized rows of random length in [minLen, maxLen]
// with a random prompt prefix masked out, so rows differ in target count.
func synthRows(n, minLen, maxLen, vocab int, seed uint64) []tokRow {
	r := rand.New(rand.NewPCG(seed, 7))
	rows := make([]tokRow, n)
	for i := range rows {
		l := minLen + r.IntN(maxLen-minLen+1)
		ids := make([]int32, l)
		labels := make([]int32, l)
		prompt := r.IntN(l - 1)
		for j := range ids {
			ids[j] = int32(r.IntN(vocab))
			labels[j] = ids[j]
			if j < prompt {
				labels[j] = engine.IgnoreIndex
			}
		}
		rows[i] = tokRow{ids, labels}
	}
	return rows
}

func writeJSONL(t testing.TB, path string, rows any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	switch rs := rows.(type) {
	case []tokRow:
		for _, r := range rs {
			enc.Encode(r)
		}
	case []string:
		for _, r := range rs {
			fmt.Fprintln(w, r)
		}
	default:
		t.Fatalf("writeJSONL: %T", rows)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// tinySetup writes a tiny model and train/eval data into dir and returns a
// config for them.
func tinySetup(t testing.TB, dir string) Config {
	t.Helper()
	writeTinyModel(t, filepath.Join(dir, "model"), 3)
	writeJSONL(t, filepath.Join(dir, "train.jsonl"), synthRows(40, 4, 20, 64, 1))
	writeJSONL(t, filepath.Join(dir, "eval.jsonl"), synthRows(6, 4, 20, 64, 2))
	cfg := DefaultConfig()
	cfg.Model = filepath.Join(dir, "model")
	cfg.Data = []string{filepath.Join(dir, "train.jsonl")}
	cfg.EvalData = []string{filepath.Join(dir, "eval.jsonl")}
	cfg.Out = filepath.Join(dir, "out")
	cfg.SeqLen, cfg.MicroBatch, cfg.GradAccum = 32, 2, 2
	cfg.Pack = true
	cfg.LR, cfg.Warmup, cfg.MinLRRatio = 1e-2, 2, 0.1
	cfg.WeightDecay = 0.01
	cfg.Epochs = 3
	cfg.SaveEvery, cfg.Keep, cfg.EvalEvery = 3, 2, 4
	cfg.Seed = 42
	return cfg
}

// readMetrics returns the rows of metrics.jsonl as generic objects.
func readMetrics(t testing.TB, out string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("metrics line %d: %v", len(rows)+1, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// stripTiming removes the wall-clock fields and re-encodes each row, so
// rows compare as exact strings (floats keep all their bits in JSON).
func stripTiming(t testing.TB, rows []map[string]any) []string {
	t.Helper()
	out := make([]string, len(rows))
	for i, r := range rows {
		delete(r, "tokens_per_s")
		delete(r, "elapsed_s")
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}
