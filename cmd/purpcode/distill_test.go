package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/distill"
	"purpcode/oracle"
	"purpcode/redteam"
)

// distillModelDir is genModelDir with room for the real rule context
// (RoPE positions are not learned, so raising the limit is enough).
func distillModelDir(t *testing.T) string {
	dir, _ := genModelDir(t)
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["max_position_embeddings"] = 2048
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDistillCommand(t *testing.T) {
	dir := distillModelDir(t)
	data := filepath.Join(t.TempDir(), "prompts.jsonl")
	rows := `{"id":"c1","messages":[{"role":"user","content":"write add"}],"oracle":"codesec","meta":{"family":"sql-injection","cwe":"CWE-89"}}
{"id":"b1","messages":[{"role":"user","content":"how do I kill a process"}],"oracle":"noreject","meta":{"family":"benign"}}
`
	if err := os.WriteFile(data, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "distill")
	args := []string{"distill", "--model", dir, "--data", data, "--out", out, "--k", "3", "--max-new-tokens", "6", "--seed", "2", "--samples", "--threads", "2"}
	var stdout, stderr bytes.Buffer
	if code := mainExit(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 prompts sampled") || !strings.Contains(stdout.String(), "oracle codesec") {
		t.Errorf("summary table missing from stdout:\n%s", stdout.String())
	}
	var sum distill.Summary
	raw, err := os.ReadFile(filepath.Join(out, distill.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Total.Prompts != 2 || sum.Total.Samples != 6 || sum.ByCWE["CWE-89"] == nil || sum.ByOracle["noreject"] == nil || !sum.Settings.RuleContext {
		t.Errorf("summary %s", raw)
	}
	for _, name := range []string{distill.SFTFile, distill.EasyFile, distill.TableFile, distill.SamplesFile} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(redteam.Policy)) {
			t.Errorf("%s holds the rule context", name)
		}
	}

	// Errors name the file and line.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(strings.SplitN(rows, "\n", 2)[0]+"\n{\"id\":\"x\",\"oracle\":\"codesec\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	args[4] = bad
	if code := mainExit(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), bad+":2:") {
		t.Errorf("exit %d, stderr %q: want the bad row's file:line", code, stderr.String())
	}
	stderr.Reset()
	if code := mainExit([]string{"distill", "--model", dir}, &stdout, &stderr); code != 2 {
		t.Errorf("missing --data and --out: exit %d, want 2 (usage)", code)
	}
}

// TestDistillRuleContext: the system prompt follows the row's meta.family.
func TestDistillRuleContext(t *testing.T) {
	coding := distillRuleContext(oracle.Row{Meta: map[string]any{"family": "sql-injection"}})
	if !strings.HasPrefix(coding, redteam.Policy) || !strings.Contains(coding, "CWE-89") {
		t.Errorf("sql-injection context lacks the policy or its CWE:\n%s", coding)
	}
	if got := distillRuleContext(oracle.Row{Meta: map[string]any{"family": "benign"}}); got != redteam.Policy {
		t.Errorf("benign context %q, want the policy alone", got)
	}
	if got := distillRuleContext(oracle.Row{}); got != redteam.Policy {
		t.Errorf("row without meta: %q, want the policy alone", got)
	}
}
