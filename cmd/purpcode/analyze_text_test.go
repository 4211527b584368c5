package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestAnalyzeTextFormat: one "file:line: severity rule CWE message" line
// per finding, the same findings as the JSON report; exit 1 for findings,
// 2 when a file does not parse; JSON when stdout is not a terminal.
func TestAnalyzeTextFormat(t *testing.T) {
	bad := writeTemp(t, "bad.py", "import os\n\nos.system(input())\nx = eval(input())\n")
	broken := writeTemp(t, "broken.py", "def f(:\n    return 1\n")
	var js, errb bytes.Buffer
	if code := mainExit([]string{"analyze", bad}, &js, &errb); code != 1 {
		t.Fatalf("default (not a terminal): exit %d", code)
	}
	var report struct {
		Files []struct {
			Findings []jsonFinding `json:"findings"`
		} `json:"files"`
	}
	if err := json.Unmarshal(js.Bytes(), &report); err != nil || len(report.Files) != 1 || len(report.Files[0].Findings) < 2 {
		t.Fatalf("default output is not the JSON report: %v\n%s", err, js.String())
	}
	var text bytes.Buffer
	if code := mainExit([]string{"analyze", "--format", "text", bad}, &text, &errb); code != 1 {
		t.Fatalf("text: exit %d", code)
	}
	var want []string
	for _, f := range report.Files[0].Findings {
		want = append(want, bad+":"+strconv.Itoa(f.Line)+": "+f.Severity+" "+f.RuleID+" "+strings.Join(f.CWE, ",")+" "+f.Message)
	}
	if got := strings.TrimSuffix(text.String(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("text output\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	text.Reset()
	if code := mainExit([]string{"analyze", "--format", "text", broken, bad}, &text, &errb); code != 2 {
		t.Errorf("findings and a parse failure: exit %d, want 2", code)
	}
	if !strings.HasPrefix(text.String(), broken+": could not parse: line 1") {
		t.Errorf("parse failure not reported first: %q", text.String())
	}
}
