package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/redteam"
)

func runSynthCLI(t *testing.T, args ...string) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := mainExit(append([]string{"synth", "--out", dir}, args...), &out, &errb); code != 0 {
		t.Fatalf("synth exit %d: %s", code, errb.String())
	}
	files := map[string][]byte{}
	for _, name := range []string{redteam.FileTrain, redteam.FileTest, redteam.FileCorpus, redteam.FileCorpusText, redteam.FileSummary} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return out.String(), files
}

func TestSynthWritesWorld(t *testing.T) {
	out, a := runSynthCLI(t, "--seed", "3", "--corpus-size", "300")
	_, b := runSynthCLI(t, "--seed", "3", "--corpus-size", "300")
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}
	if !strings.Contains(out, "test templates") || !strings.Contains(out, "validation templates") {
		t.Errorf("output lacks the summary: %s", out)
	}
	var s redteam.Summary
	if err := json.Unmarshal(a[redteam.FileSummary], &s); err != nil {
		t.Fatal(err)
	}
	if s.Seed != 3 || s.Corpus.Total != 300 {
		t.Errorf("summary seed %d corpus %d, want 3 and 300", s.Seed, s.Corpus.Total)
	}
	if n := bytes.Count(a[redteam.FileCorpus], []byte("\n")); n != 300 {
		t.Errorf("corpus.jsonl has %d lines, want 300", n)
	}
	// Each corpus line is a plain chat row: only "messages".
	first, _, _ := bytes.Cut(a[redteam.FileCorpus], []byte("\n"))
	var row map[string]json.RawMessage
	if err := json.Unmarshal(first, &row); err != nil || len(row) != 1 || row["messages"] == nil {
		t.Errorf("corpus row %s: want only a messages field (%v)", first, err)
	}
	rows := bytes.Count(a[redteam.FileTest], []byte("\n"))
	total := 0
	for _, n := range s.Prompts[redteam.SplitTest] {
		total += n
	}
	if rows != total {
		t.Errorf("%s has %d rows, summary says %d", redteam.FileTest, rows, total)
	}
}

func TestSynthUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainExit([]string{"synth"}, &out, &errb); code != 2 {
		t.Errorf("synth without --out: exit %d, want 2", code)
	}
	dir := t.TempDir()
	if code := mainExit([]string{"synth", "--out", dir, "--insecure-frac", "2"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "InsecureFrac") {
		t.Errorf("invalid fraction: exit %d, stderr %q", code, errb.String())
	}
}
