package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratePromptAndStdin: --prompt TEXT and --data - give exactly the
// samples of the same prompt row read from a file.
func TestGeneratePromptAndStdin(t *testing.T) {
	dir, _ := genModelDir(t)
	row := `{"id":"prompt","messages":[{"role":"user","content":"write add"}]}` + "\n"
	file := filepath.Join(t.TempDir(), "p.jsonl")
	if err := os.WriteFile(file, []byte(row), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--model", dir, "--n", "2", "--max-new-tokens", "4", "--seed", "3"}
	gen := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		err := generateMain(append(append([]string{}, common...), args...), strings.NewReader(stdin), &out, &errb)
		code := 0
		if err != nil {
			code = 1
		}
		return code, out.String(), errb.String() + errString(err)
	}
	_, fromFile, msg := gen("", "--data", file)
	if strings.Count(fromFile, "\n") != 2 {
		t.Fatalf("file: want 2 samples, got %q %s", fromFile, msg)
	}
	if code, got, msg := gen("", "--prompt", "write add"); code != 0 || got != fromFile {
		t.Errorf("--prompt: exit %d %s\n%s\nwant\n%s", code, msg, got, fromFile)
	}
	if code, got, msg := gen(row, "--data", "-"); code != 0 || got != fromFile {
		t.Errorf("--data -: exit %d %s\n%s\nwant\n%s", code, msg, got, fromFile)
	}
	_, texts, _ := gen("", "--prompt", "write add", "--text")
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(fromFile), "\n") {
		var s sampleRow
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.Text+"\n")
	}
	if texts != strings.Join(want, "\n") {
		t.Errorf("--text: %q, want %q", texts, strings.Join(want, "\n"))
	}
	if code, _, msg := gen("{bad\n", "--data", "-"); code == 0 || !strings.Contains(msg, "stdin:1:") {
		t.Errorf("bad stdin row: exit %d, %q", code, msg)
	}
	var out, errb bytes.Buffer
	if code := mainExit([]string{"generate", "--model", dir, "--prompt", "a", "--data", file}, &out, &errb); code != 2 ||
		strings.Count(errb.String(), "\n") != 2 || !strings.Contains(errb.String(), "--help") {
		t.Errorf("--prompt with --data: exit %d, %q", code, errb.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
