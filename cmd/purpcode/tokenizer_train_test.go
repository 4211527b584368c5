package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/tokenizer"
)

// writeCorpus writes a small text corpus of several paragraphs.
func writeCorpus(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "## Analysis\nThe task is to write `count_%d`.\n## Answer\n```python\ndef count_%d(path):\n    return len(open(path).read())\n```\n\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTrainTokenizerWritesLoadableDir(t *testing.T) {
	corpus := writeCorpus(t)
	out := filepath.Join(t.TempDir(), "tok")
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"train-tokenizer", "--corpus", corpus, "--vocab", "300", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	tok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 300 {
		t.Errorf("vocab %d, want 300", tok.VocabSize())
	}
	// The special tokens follow the 297 byte and merge tokens, in order.
	for i, s := range defaultSpecial {
		if id, ok := tok.TokenID(s); !ok || id != 297+i {
			t.Errorf("%s: id %d (found %v), want %d", s, id, ok, 297+i)
		}
	}
	eos, ok := tok.EOS()
	if !ok || tok.Token(eos) != "<|im_end|>" {
		t.Errorf("eos %d %q, want <|im_end|>", eos, tok.Token(eos))
	}
	text := "## Analysis\nThe task is to write `count_7`."
	if got := tok.Decode(tok.Encode(text), false); got != text {
		t.Errorf("round trip %q, got %q", text, got)
	}
	if n := len(tok.Encode(text)); n > len(text)*2/3 {
		t.Errorf("%d tokens for %d bytes: merges were not learned", n, len(text))
	}

	msgs := []tokenizer.Message{{Role: "system", Content: "Be safe."}, {Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}
	got, err := tok.RenderChat(msgs[:2], tokenizer.ChatOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nBe safe.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("chat prompt\n%q, want\n%q", got, want)
	}
	chat, err := tok.ApplyChat(msgs, tokenizer.ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var masked []int
	for i, on := range chat.Assistant {
		if on {
			masked = append(masked, chat.IDs[i])
		}
	}
	if got := tok.Decode(masked, false); got != "hello<|im_end|>" {
		t.Errorf("assistant tokens decode to %q, want %q", got, "hello<|im_end|>")
	}

	var gen struct {
		EOS []int `json:"eos_token_id"`
		PAD int   `json:"pad_token_id"`
	}
	data, err := os.ReadFile(filepath.Join(out, "generation_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &gen); err != nil {
		t.Fatal(err)
	}
	if len(gen.EOS) != 2 || gen.EOS[0] != 299 || gen.EOS[1] != 297 || gen.PAD != 297 {
		t.Errorf("generation_config %s, want eos [299 297] and pad 297", data)
	}
}

func TestTrainTokenizerDeterministic(t *testing.T) {
	corpus := writeCorpus(t)
	var files [2][]byte
	for i := range files {
		out := filepath.Join(t.TempDir(), "tok")
		var stdout, stderr bytes.Buffer
		if code := mainExit([]string{"train-tokenizer", "--corpus", corpus, "--vocab", "280", "--out", out}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var err error
		if files[i], err = os.ReadFile(filepath.Join(out, "tokenizer.json")); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two runs on the same corpus wrote different tokenizer.json files")
	}
}

func TestTrainTokenizerErrors(t *testing.T) {
	corpus := writeCorpus(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"missing vocab", []string{"--corpus", corpus}, "--vocab", 2},
		{"vocab out of reach", []string{"--corpus", corpus, "--vocab", "100000"}, "corpus too small", 1},
		{"eos not special", []string{"--corpus", corpus, "--vocab", "300", "--eos", "</s>"}, `--eos "</s>"`, 1},
		{"missing corpus file", []string{"--corpus", corpus + ".missing", "--vocab", "300"}, "read corpus", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tok")
			var stdout, stderr bytes.Buffer
			code := mainExit(append([]string{"train-tokenizer", "--out", out}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tc.code, tc.want)
			}
			if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); err == nil {
				t.Error("a failed run wrote tokenizer.json")
			}
		})
	}
}
