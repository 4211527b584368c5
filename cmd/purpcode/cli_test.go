package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/internal/testref"
)

func writeConfigFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = mainExit(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestConfigErrorsNameKeysAsWritten: file, line and the key as the user
// wrote it (with a guess), never a Go type name; one line per bad value.
func TestConfigErrorsNameKeysAsWritten(t *testing.T) {
	sftYAML := writeConfigFile(t, "x.yaml", "model: m\ndata: a.jsonl\nout: o\nlearning_rate: 1e-5\nseq_len: long\n")
	code, _, stderr := runCLI("sft", "--config", sftYAML)
	want := "purpcode sft: " + sftYAML + ": line 4: unknown key \"learning_rate\" (did you mean \"lr\"?)\n" +
		sftYAML + ": line 5: seq_len: want an integer, got \"long\"\n"
	if code != 1 || stderr != want {
		t.Errorf("sft: exit %d, stderr\n%s\nwant\n%s", code, stderr, want)
	}

	runYAML := writeConfigFile(t, "recipe.yaml", "out: o\nsft:\n  learning_rate: 1\n")
	code, _, stderr = runCLI("run", "--config", runYAML, "--out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, runYAML+": line 3: unknown key \"sft.learning_rate\" (did you mean \"sft.lr\"?)") {
		t.Errorf("run: exit %d, stderr %q", code, stderr)
	}
	for _, goName := range []string{"sft.Config", "grpo.Config", "recipeConfig", "recipe.Config", "unmarshal", "!!str", "float64"} {
		if strings.Contains(stderr, goName) {
			t.Errorf("error names Go internals (%s): %q", goName, stderr)
		}
	}
}

func TestConfigDataIsStringOrList(t *testing.T) {
	for _, data := range []string{"data: a.jsonl\n", "data: [a.jsonl]\n", "data:\n  - a.jsonl\n"} {
		p := writeConfigFile(t, "x.yaml", "model: m\nout: o\n"+data)
		cfg, _, err := sftConfig([]string{"--config", p}, &bytes.Buffer{})
		if err != nil || len(cfg.Data) != 1 || cfg.Data[0] != "a.jsonl" {
			t.Errorf("%q: %v %q", data, err, cfg.Data)
		}
		rcfg, _, err := rlConfig([]string{"--config", p}, &bytes.Buffer{})
		if err != nil || len(rcfg.Data) != 1 || rcfg.Data[0] != "a.jsonl" {
			t.Errorf("rl %q: %v %q", data, err, rcfg.Data)
		}
	}
}

// TestOneErrorPerBadValue: a bad value is reported once, under its own key.
func TestOneErrorPerBadValue(t *testing.T) {
	base := []string{"--model", "m", "--data", "a", "--out", "o"}
	for _, tc := range []struct {
		cmd  string
		args []string
		key  string
	}{
		{"rl", []string{"--lr", "-1"}, "lr"},
		{"rl", []string{"--top-p", "2"}, "top_p"},
		{"rl", []string{"--clip", "-1"}, "clip"},
		{"rl", []string{"--keep", "-1"}, "keep"},
		{"sft", []string{"--epochs", "-1"}, "epochs"},
		{"sft", []string{"--lr", "-1"}, "lr"},
	} {
		code, _, stderr := runCLI(append(append([]string{tc.cmd}, base...), tc.args...)...)
		want := "purpcode " + tc.cmd + ": invalid " + tc.cmd + " config: " + tc.key + ": "
		if code != 1 || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s %v: exit %d, stderr %q; want one line starting %q", tc.cmd, tc.args, code, stderr, want)
		}
	}
	code, _, stderr := runCLI("rl", "--model", "m", "--data", "a", "--out", "o", "--lr", "-1", "--top-p", "0")
	if code != 1 || strings.Count(stderr, "\n") != 3 || !strings.Contains(stderr, "\n  lr: ") || !strings.Contains(stderr, "\n  top_p: ") {
		t.Errorf("two bad values: want a header and one line each, got %q", stderr)
	}
}

// TestSFTDefaultSeqLenFitsTheModel: the tiny model allows 640 positions;
// with seq_len left at its default a missing data file is what is
// reported.
func TestSFTDefaultSeqLenFitsTheModel(t *testing.T) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nothere.jsonl")
	code, _, stderr := runCLI("sft", "--model", filepath.Join(root, "testdata", "base-model"), "--data", missing, "--out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "nothere.jsonl") || !strings.Contains(stderr, "no such file") || strings.Contains(stderr, "seq_len") {
		t.Errorf("exit %d, stderr %q; want the missing file reported", code, stderr)
	}
}
