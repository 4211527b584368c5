package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRewardFindingLinesAreBlockRelative: a finding is located by its
// code block and the line within that block's code, as a reader counts.
func TestRewardFindingLinesAreBlockRelative(t *testing.T) {
	response := rewardAnalysis + "Run it like this:\n```sh\npython run.py\n```\nThe code:\n```python\nimport os\n\n\ndef run(cmd):\n    os.system(cmd)\n```\n"
	path := writeRows(t, rewardRow(t, map[string]any{"id": "vuln", "oracle": "codesec", "prompt": "p", "response": response}))
	var out, errb bytes.Buffer
	if code := mainExit([]string{"reward", "--data", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// os.system is on line 5 of the second block's code; the fence opening
	// that block is line 8 of the response, so the response line is 13.
	if !strings.Contains(out.String(), "] code block 2 line 5: ") || !strings.Contains(out.String(), "in code block 2 line 5") {
		t.Errorf("text output does not locate the finding at code block 2 line 5:\n%s", out.String())
	}
	out.Reset()
	if err := runReward([]string{"--data", path, "--json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows []struct {
			Findings []rewardFinding `json:"findings"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || len(doc.Rows) != 1 || len(doc.Rows[0].Findings) == 0 {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	f := doc.Rows[0].Findings[0]
	lines := strings.Split(response, "\n")
	if f.Block != 2 || f.Line != 5 || f.ResponseLine != 13 || !strings.Contains(lines[f.ResponseLine-1], "os.system") {
		t.Errorf("finding %+v: want block 2, line 5, response line 13", f)
	}
}
