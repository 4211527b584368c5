package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/internal/testref"
)

func writeTemp(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const vulnSrc = "import os\n\ndef run(cmd):\n    os.system(cmd)\n    assert cmd\n"

func TestAnalyzeJSONAndExitStatus(t *testing.T) {
	bad := writeTemp(t, "bad.py", vulnSrc)
	good := writeTemp(t, "good.py", "def add(a, b):\n    return a + b\n")
	var out, errb bytes.Buffer
	code := mainExit([]string{"analyze", bad, good}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %s)", code, errb.String())
	}
	var doc struct {
		Files []struct {
			File     string
			Parsed   bool
			Findings []struct {
				RuleID   string `json:"rule_id"`
				Severity string
				Line     int
				CWE      []string
			}
		}
		Summary map[string]int
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(doc.Files) != 2 || doc.Summary["findings"] != 1 {
		t.Fatalf("unexpected report: %+v", doc)
	}
	f := doc.Files[0].Findings[0]
	if f.RuleID != "os-system-injection" || f.Line != 4 || f.Severity != "medium" || f.CWE[0] != "CWE-78" {
		t.Fatalf("finding: %+v", f)
	}
	// The low-severity assert is below the default threshold.
	if len(doc.Files[1].Findings) != 0 || !doc.Files[1].Parsed {
		t.Fatalf("clean file: %+v", doc.Files[1])
	}

	out.Reset()
	if code := mainExit([]string{"analyze", good}, &out, &errb); code != 0 {
		t.Fatalf("clean file exit %d", code)
	}
	out.Reset()
	if code := mainExit([]string{"analyze", "--min-severity", "high", bad}, &out, &errb); code != 0 {
		t.Fatalf("no high findings, exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := mainExit([]string{"analyze", "--min-severity", "low", bad}, &out, &errb); code != 1 || !strings.Contains(out.String(), "assert-used") {
		t.Fatalf("low threshold should include assert: exit %d %s", code, out.String())
	}
}

func TestAnalyzeParseFailureIsNotClean(t *testing.T) {
	broken := writeTemp(t, "broken.py", "def f(:\n    return 1\n")
	var out, errb bytes.Buffer
	if code := mainExit([]string{"analyze", broken}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2 (could not parse)", code)
	}
	if !strings.Contains(out.String(), `"parsed": false`) || !strings.Contains(out.String(), "line 1") {
		t.Fatalf("parse failure not reported: %s", out.String())
	}
}

func TestAnalyzeSARIF(t *testing.T) {
	bad := writeTemp(t, "bad.py", vulnSrc)
	var out, errb bytes.Buffer
	if code := mainExit([]string{"analyze", "--format", "sarif", bad}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	var log struct {
		Version string
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string
					Rules []struct {
						ID               string
						ShortDescription struct{ Text string }
					}
				}
			}
			Results []struct {
				RuleID    string
				RuleIndex int
				Level     string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine, StartColumn int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &log); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 {
		t.Fatalf("bad SARIF header: %+v", log)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) < 40 || len(run.Results) != 1 {
		t.Fatalf("rules %d results %d", len(run.Tool.Driver.Rules), len(run.Results))
	}
	r := run.Results[0]
	if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || r.Level != "warning" {
		t.Fatalf("result does not point at its rule: %+v", r)
	}
	loc := r.Locations[0].PhysicalLocation
	if loc.ArtifactLocation.URI != bad || loc.Region.StartLine != 4 || loc.Region.StartColumn != 5 {
		t.Fatalf("location: %+v", loc)
	}
}

func TestAnalyzeRulesAndFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainExit([]string{"analyze", "--rules"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rules []struct{ ID, Severity, Fix, Description string }
	if err := json.Unmarshal(out.Bytes(), &rules); err != nil || len(rules) < 40 {
		t.Fatalf("catalog: %v, %d rules", err, len(rules))
	}
	for _, bad := range [][]string{{"analyze", "--format", "xml"}, {"analyze", "--min-severity", "urgent"}, {"analyze", "--nope"}} {
		if code := mainExit(bad, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	if code := mainExit([]string{"analyze", filepath.Join(t.TempDir(), "missing.py")}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "missing.py") {
		t.Errorf("missing file: exit %d, stderr %q", code, errb.String())
	}
}

func TestAnalyzeBenchRefs(t *testing.T) {
	dir := testref.Dir(t, "bench")
	var out, errb bytes.Buffer
	if code := mainExit([]string{"analyze", "-bench-refs", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"severity >= medium", "DEVELOPMENT-SET", "CWE-338", "TOTAL", "False positives on HumanEval + MBPP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
