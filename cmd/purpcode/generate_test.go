package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// genModelDir writes a complete tiny model directory: random weights, a
// tokenizer trained on a few lines, a ChatML-like template, and a
// generation_config.json.
func genModelDir(t *testing.T) (string, *tokenizer.Tokenizer) {
	t.Helper()
	dir := t.TempDir()
	special := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
	tj, err := tokenizer.Train([]string{"def add(a, b):\n    return a + b\n", "## Analysis\nThe user asks for code.\n## Answer\n", "hello world"}, 300, special)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	tc, _ := json.Marshal(map[string]any{"chat_template": tmpl, "eos_token": "<|im_end|>"})
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":300,
		"max_position_embeddings":128,"initializer_range":0.2,"eos_token_id":297}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	m := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 5)
	err = m.Save(dir, qwen2.SaveOptions{Files: map[string][]byte{
		"tokenizer.json": tj, "tokenizer_config.json": tc,
		"generation_config.json": []byte(`{"eos_token_id": [299, 297]}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tok
}

func TestGenerateCommand(t *testing.T) {
	dir, tok := genModelDir(t)
	data := filepath.Join(t.TempDir(), "prompts.jsonl")
	prompts := `{"id":"chat-1","messages":[{"role":"user","content":"write add"}]}

{"id":7,"prompt":"def add(a, b):"}
`
	if err := os.WriteFile(data, []byte(prompts), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	args := []string{"--model", dir, "--data", data, "--n", "3", "--temperature", "0.9", "--top-p", "0.95",
		"--max-new-tokens", "12", "--seed", "4", "--prefix", `## Analysis\n`, "--out", out}
	var stdout, stderr bytes.Buffer
	if code := mainExit(append([]string{"generate"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d output rows, want 2 prompts x 3 samples:\n%s", len(lines), raw)
	}
	for i, line := range lines {
		var r struct {
			ID           json.RawMessage `json:"id"`
			Sample       int             `json:"sample"`
			Text         string          `json:"text"`
			TokenIDs     []int           `json:"token_ids"`
			LogProbs     []float64       `json:"logprobs"`
			SampLogProbs []float64       `json:"sampling_logprobs"`
			FinishReason string          `json:"finish_reason"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		wantID := []string{`"chat-1"`, `7`}[i/3]
		if string(r.ID) != wantID || r.Sample != i%3 {
			t.Errorf("row %d: id %s sample %d, want %s %d", i, r.ID, r.Sample, wantID, i%3)
		}
		if len(r.TokenIDs) == 0 || len(r.LogProbs) != len(r.TokenIDs) || len(r.SampLogProbs) != len(r.TokenIDs) {
			t.Errorf("row %d: %d tokens, %d logprobs, %d sampling logprobs", i, len(r.TokenIDs), len(r.LogProbs), len(r.SampLogProbs))
		}
		for _, lp := range r.LogProbs {
			if lp > 0 {
				t.Errorf("row %d: positive log-prob %v", i, lp)
			}
		}
		if want := "## Analysis\n" + tok.Decode(r.TokenIDs, true); r.Text != want {
			t.Errorf("row %d: text %q, want prefix + decoded tokens %q", i, r.Text, want)
		}
		last := r.TokenIDs[len(r.TokenIDs)-1]
		switch r.FinishReason {
		case "stop":
			if last != 297 && last != 299 {
				t.Errorf("row %d: stopped on token %d, not an EOS from generation_config.json", i, last)
			}
		case "length":
			if len(r.TokenIDs) != 12 {
				t.Errorf("row %d: length finish after %d tokens", i, len(r.TokenIDs))
			}
		default:
			t.Errorf("row %d: finish reason %q", i, r.FinishReason)
		}
	}
	// Same seed, same output, written to stdout this time.
	stdout.Reset()
	if code := mainExit(append([]string{"generate"}, args[:len(args)-2]...), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stdout.String() != string(raw) {
		t.Errorf("rerun with the same seed differs:\n%s\nvs\n%s", stdout.String(), raw)
	}
}

func TestGenerateCommandErrors(t *testing.T) {
	dir, _ := genModelDir(t)
	tmp := t.TempDir()
	cases := map[string]struct{ data, want string }{
		"bad json":     {"{\"id\":1,\"prompt\":\"x\"}\n{oops\n", "prompts.jsonl:2"},
		"no prompt":    {"{\"id\":1}\n", "prompts.jsonl:1: row has neither"},
		"both":         {"{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}\n", "prompts.jsonl:1: row has both"},
		"no role":      {"\n\n{\"messages\":[{\"content\":\"b\"}]}\n", "prompts.jsonl:3: messages[0]"},
		"empty file":   {"\n", "no prompts"},
		"plain prompt": {"{\"id\":\"a\",\"prompt\":\"hello\"}\n", ""},
	}
	for name, c := range cases {
		data := filepath.Join(tmp, "prompts.jsonl")
		if err := os.WriteFile(data, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := mainExit([]string{"generate", "--model", dir, "--data", data, "--n", "1", "--max-new-tokens", "2"}, &stdout, &stderr)
		if c.want == "" {
			if code != 0 {
				t.Errorf("%s: exit %d: %s", name, code, stderr.String())
			}
			continue
		}
		if code == 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q, want it to contain %q", name, code, stderr.String(), c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"generate", "--model", dir}, &stdout, &stderr); code != 2 {
		t.Errorf("missing --data: exit %d, want 2", code)
	}
}
