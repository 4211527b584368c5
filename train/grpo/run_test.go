package grpo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/tokenizer"
)

// letterScorer is a programmatic oracle: the reward is the fraction of
// the response's characters that are the letter 'a'. A random tiny model
// emits it rarely; GRPO must learn to emit it more.
type letterScorer struct{}

func (letterScorer) Score(_ context.Context, row oracle.Row) (oracle.Score, error) {
	text := row.Response
	if len(text) == 0 {
		return oracle.Score{ID: row.ID, Format: true}, nil
	}
	r := float64(strings.Count(text, "a")) / float64(len(text))
	return oracle.Score{ID: row.ID, Reward: r, OracleScore: r, Format: true, OracleRan: true}, nil
}

// writeToyModel writes a tiny random Qwen2 with a small byte-level BPE
// tokenizer and returns its directory and prompt file.
func writeToyModel(t testing.TB) (modelDir, promptFile string) {
	t.Helper()
	dir := t.TempDir()
	corpus := []string{"abc abd bad cab dab", "the cat sat on a mat", "code data base case", "a b c d e f g"}
	tj, err := tokenizer.Train(corpus, 300, []string{"<|endoftext|>"})
	if err != nil {
		t.Fatal(err)
	}
	modelDir = filepath.Join(dir, "model")
	tk, err := tokenizer.Parse(tj, nil)
	if err != nil {
		t.Fatal(err)
	}
	eos, ok := tk.TokenID("<|endoftext|>")
	if !ok {
		t.Fatal("no eos token")
	}
	cfg, err := qwen2.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":%d,
		"max_position_embeddings":64,"rope_theta":10000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":true,"eos_token_id":%d}`, tk.VocabSize(), eos)), "toy")
	if err != nil {
		t.Fatal(err)
	}
	m := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 3)
	tc := fmt.Sprintf(`{"eos_token":"<|endoftext|>","model_max_length":64}`)
	if err := m.Save(modelDir, qwen2.SaveOptions{Files: map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": []byte(tc)}}); err != nil {
		t.Fatal(err)
	}
	promptFile = filepath.Join(dir, "prompts.jsonl")
	var b strings.Builder
	for i, p := range []string{"the cat", "code base", "a b c", "dab cab", "bad data", "sat on"} {
		fmt.Fprintf(&b, `{"id":"p%d","prompt":%q,"oracle":"noreject"}`+"\n", i, p)
	}
	if err := os.WriteFile(promptFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return modelDir, promptFile
}

func toyConfig(modelDir, prompts, out string) Config {
	cfg := DefaultConfig()
	cfg.Model, cfg.Data, cfg.Out = modelDir, []string{prompts}, out
	cfg.Steps, cfg.PromptsPerStep, cfg.GroupSize = 12, 4, 8
	cfg.MaxPromptLen, cfg.MaxResponseLen, cfg.Prefix = 16, 12, ""
	cfg.LR, cfg.Clip, cfg.KLCoef = 2e-2, 1, 0.001
	cfg.SaveEvery, cfg.Seed = 4, 7
	return cfg
}

func readMetrics(t testing.TB, path string) []Metrics {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []Metrics
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, m)
	}
	return rows
}

// TestRewardRises: from a fixed seed, GRPO on the letter task raises the
// mean reward well above the random policy's within a dozen steps.
func TestRewardRises(t *testing.T) {
	modelDir, prompts := writeToyModel(t)
	out := filepath.Join(t.TempDir(), "run")
	cfg := toyConfig(modelDir, prompts, out)
	res, err := Run(context.Background(), cfg, Options{Scorer: letterScorer{}, Backend: engine.NewDefaultCPU(engine.CPUOptions{Workers: 2})})
	if err != nil {
		t.Fatal(err)
	}
	rows := readMetrics(t, filepath.Join(out, MetricsFile))
	if len(rows) != cfg.Steps || res.Steps != int64(cfg.Steps) {
		t.Fatalf("%d metric rows, %d steps", len(rows), res.Steps)
	}
	first := (rows[0].Reward + rows[1].Reward) / 2
	last := (rows[len(rows)-1].Reward + rows[len(rows)-2].Reward) / 2
	for _, r := range rows {
		t.Logf("step %2d reward %.3f drawn %2d usable %.2f kl %.5f clip %.3f entropy %.2f len %.1f", r.Step, r.Reward, r.Drawn, r.UsableFrac, r.KL, r.ClipFrac, r.Entropy, r.ResponseLen)
	}
	if last < 2*first || last-first < 0.1 {
		t.Fatalf("reward did not rise: first steps %.3f, last steps %.3f", first, last)
	}
	if math.IsNaN(rows[len(rows)-1].KL) || rows[len(rows)-1].KL <= 0 {
		t.Fatalf("KL to the reference should be positive after training, got %v", rows[len(rows)-1].KL)
	}
	// Rollouts (paged KV decode) and the trainer (packed forward) compute
	// the same policy's log-probs in float32 by two code paths.
	for _, r := range rows {
		if r.TrainTokens > 0 && (r.RolloutLogpDiff == 0 || r.RolloutLogpDiff > 1e-3) {
			t.Errorf("step %d: rollout/trainer log-prob gap %.3g, want in (0, 1e-3]", r.Step, r.RolloutLogpDiff)
		}
	}
}
