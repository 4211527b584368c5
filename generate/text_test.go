package generate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

func TestStopTokens(t *testing.T) {
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":8,"intermediate_size":8,
		"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":50,"max_position_embeddings":8,"eos_token_id":3}`), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		file string // "" = no generation_config.json
		want []int
		err  string
	}{
		"absent": {"", []int{3}, ""},
		"int":    {`{"eos_token_id": 7}`, []int{7, 3}, ""},
		"list":   {`{"eos_token_id": [9, 3, 7]}`, []int{9, 3, 7}, ""},
		"null":   {`{"eos_token_id": null, "do_sample": true}`, []int{3}, ""},
		"string": {`{"eos_token_id": "x"}`, nil, `field "eos_token_id"`},
		"range":  {`{"eos_token_id": 50}`, nil, "outside vocab_size 50"},
		"broken": {`{`, nil, "generation_config.json"},
	}
	for name, c := range cases {
		dir := t.TempDir()
		if c.file != "" {
			if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := StopTokens(dir, cfg, nil)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", name, err, c.err)
		case c.err == "" && (err != nil || !slices.Equal(got, c.want)):
			t.Errorf("%s: %v %v, want %v", name, got, err, c.want)
		}
	}
}

func TestBuildPrompt(t *testing.T) {
	tj, err := tokenizer.Train([]string{"## Analysis\nhello world", "write code"}, 280, []string{"<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	tc, _ := json.Marshal(map[string]any{"chat_template": tmpl, "eos_token": "<|im_end|>"})
	tok, err := tokenizer.Parse(tj, tc)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []tokenizer.Message{{Role: "user", Content: "write code"}}
	ids, text, err := BuildPrompt(tok, PromptSpec{Messages: msgs, Prefix: "## Analysis\n"})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\nwrite code<|im_end|>\n<|im_start|>assistant\n## Analysis\n"
	if text != want || !slices.Equal(ids, tok.Encode(want)) {
		t.Errorf("chat prompt %q (ids %v), want %q", text, ids, want)
	}
	if ids, text, err := BuildPrompt(tok, PromptSpec{Prompt: "hello"}); err != nil || text != "hello" || !slices.Equal(ids, tok.Encode("hello")) {
		t.Errorf("raw prompt: %v %q %v", ids, text, err)
	}
	if got := CompletionText(tok, "## Analysis\n", tok.Encode("hello<|im_end|>")); got != "## Analysis\nhello" {
		t.Errorf("completion text %q", got)
	}
	for _, bad := range []PromptSpec{{}, {Prompt: "a", Messages: msgs}} {
		if _, _, err := BuildPrompt(tok, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
