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

// tokenizeFixture trains a small tokenizer into a temp dir with a ChatML
// template file next to it.
func tokenizeFixture(t *testing.T) (dir, tmpl string, tok *tokenizer.Tokenizer) {
	t.Helper()
	dir = t.TempDir()
	data, err := tokenizer.Train([]string{"def f(x):\n    return x + 1\n", "hello world, hello tokens", "naïve café 東京"}, 400, []string{"<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl = filepath.Join(dir, "chatml.jinja")
	src := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	if err := os.WriteFile(tmpl, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err = tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tmpl, tok
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func idsJSON(ids []int) string {
	b, _ := json.Marshal(map[string][]int{"ids": ids})
	return string(b)
}

func TestTokenizeEncodeDecode(t *testing.T) {
	dir, tmpl, tok := tokenizeFixture(t)
	msgs := []tokenizer.Message{{Role: "user", Content: "hello"}}
	chat, err := tok.ApplyChat(msgs, tokenizer.ChatOptions{AddGenerationPrompt: true, Template: mustRead(t, tmpl)})
	if err != nil {
		t.Fatal(err)
	}
	in := writeFile(t, dir, "in.jsonl", `{"text":"def f(x): return 1"}`+"\n\n"+`{"messages":[{"role":"user","content":"hello"}]}`+"\n")
	var out, errb bytes.Buffer
	if err := tokenizeMain([]string{"--tokenizer", dir, "--data", in, "--chat-template", tmpl, "--add-generation-prompt"}, nil, &out, &errb); err != nil {
		t.Fatalf("%v (stderr %s)", err, errb.String())
	}
	want := idsJSON(tok.Encode("def f(x): return 1")) + "\n" + idsJSON(chat.IDs) + "\n"
	if out.String() != want {
		t.Fatalf("encode output\n%s\nwant\n%s", out.String(), want)
	}

	// Decode the rows just written, from standard input.
	var dec bytes.Buffer
	if err := tokenizeMain([]string{"--tokenizer", dir, "--decode"}, strings.NewReader(out.String()), &dec, &errb); err != nil {
		t.Fatal(err)
	}
	wantDec := `{"text":"def f(x): return 1"}` + "\n" + fmt.Sprintf(`{"text":%q}`, "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n") + "\n"
	if dec.String() != wantDec {
		t.Fatalf("decode output\n%s\nwant\n%s", dec.String(), wantDec)
	}

	// Plain lines: each line, CRLF or not, is encoded without its ending.
	var lines bytes.Buffer
	if err := tokenizeMain([]string{"--tokenizer", dir, "--lines"}, strings.NewReader("hello world\r\n\nnaïve"), &lines, &errb); err != nil {
		t.Fatal(err)
	}
	wantLines := idsJSON(tok.Encode("hello world")) + "\n" + idsJSON([]int{}) + "\n" + idsJSON(tok.Encode("naïve")) + "\n"
	if lines.String() != wantLines {
		t.Fatalf("lines output\n%s\nwant\n%s", lines.String(), wantLines)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTokenizeErrors(t *testing.T) {
	dir, _, _ := tokenizeFixture(t)
	in := writeFile(t, dir, "bad.jsonl", `{"text":"ok"}`+"\n"+`{"txt":"typo"}`+"\n")
	var out, errb bytes.Buffer
	err := tokenizeMain([]string{"--tokenizer", dir, "--data", in}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), in+":2:") || !strings.Contains(err.Error(), "neither") {
		t.Errorf("err = %v, want it to name %s:2 and the missing field", err, in)
	}
	err = tokenizeMain([]string{"--tokenizer", dir, "--decode"}, strings.NewReader("{\"ids\":[1]}\nnot json\n"), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "stdin:2:") {
		t.Errorf("err = %v, want stdin:2", err)
	}
	// Messages without any chat template available.
	err = tokenizeMain([]string{"--tokenizer", dir}, strings.NewReader(`{"messages":[{"role":"user","content":"x"}]}`), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "stdin:1:") || !strings.Contains(err.Error(), "chat template") {
		t.Errorf("err = %v, want stdin:1 and a missing-template error", err)
	}
	if err := tokenizeMain(nil, nil, &out, &errb); err != errUsage {
		t.Errorf("missing --tokenizer: err = %v, want errUsage", err)
	}
}
