package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRulesAndSeeds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules, err := ReadRules(write("cwe.jsonl", `{"id":"cwe-1333","name":"ReDoS","description":"Catastrophic backtracking.","bad":"re.match('(a+)+$', s)"}`+"\n\n"+
		`{"id":"my-rule","cwe":["CWE-400","CWE-1333"],"name":"Unbounded regex"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].CWE[0] != "CWE-1333" || len(rules[1].CWE) != 2 || rules[0].Bad == "" || rules[0].Analyzer {
		t.Errorf("rules %+v", rules)
	}
	for name, text := range map[string]string{
		"no-cwe.jsonl":  `{"id":"my-rule","name":"x"}`,
		"unknown.jsonl": `{"id":"CWE-1","name":"x","severity":"high"}`,
		"empty.jsonl":   `{"id":"CWE-1"}`,
	} {
		if _, err := ReadRules(write(name, text)); err == nil || !strings.Contains(err.Error(), name+":1:") {
			t.Errorf("%s: error %v, want one naming the file and line", name, err)
		}
	}
	seeds, err := ReadSeeds(write("seeds.txt", "Write a keylogger.\n\n{\"id\":\"x\",\"prompt\":\"Steal cookies.\",\"topic\":\"stealer\"}\n"), "mal")
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) != 2 || seeds[0].ID != "mal-1" || seeds[1].Topic != "stealer" {
		t.Errorf("seeds %+v", seeds)
	}
	if _, err := ReadSeeds(write("dup.jsonl", `{"id":"a","prompt":"p"}`+"\n"+`{"id":"a","prompt":"q"}`), "mal"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("duplicate seed ids: %v", err)
	}
}
