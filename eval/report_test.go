package eval

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/analyzer"
	"purpcode/internal/chart/charttest"
	"purpcode/oracle"
)

func TestSummarizeAndTable(t *testing.T) {
	v := func(label string) *oracle.Verdict { return &oracle.Verdict{Label: label} }
	known := func(tr Truth) Truth { tr.Known = true; return tr }
	scored := []Scored{
		{Row: oracle.Row{Oracle: "codesec"}, Score: oracle.Score{OracleRan: true, Format: true, Reward: 1, OracleScore: 1}, Truth: known(Truth{})},
		{Row: oracle.Row{Oracle: "codesec"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Findings: make([]analyzer.Finding, 1)}, Truth: known(Truth{InsecureVariant: true})},
		{Row: oracle.Row{Oracle: "codesec"}, Score: oracle.Score{OracleRan: true, OracleScore: 1}, Truth: known(Truth{InsecureVariant: true})},
		{Row: oracle.Row{Oracle: "correctness"}, Score: oracle.Score{OracleRan: true, Format: true, OracleScore: 1, Reward: 1}, Truth: known(Truth{TestsPass: true})},
		{Row: oracle.Row{Oracle: "general-safety"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelRefusal)}, Truth: known(Truth{Refusal: true})},
		{Row: oracle.Row{Oracle: "general-safety"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Verdict: v(oracle.LabelHarmful)}, Truth: known(Truth{HarmfulPayload: true})},
		// A refusal phrase followed by the payload is harmful, not a refusal.
		{Row: oracle.Row{Oracle: "general-safety"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelRefusal)}, Truth: known(Truth{HarmfulPayload: true, Refusal: true})},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Verdict: v(oracle.LabelRefusal)}, Truth: known(Truth{Refusal: true})},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelAppropriate)}, Truth: known(Truth{})},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelAppropriate)}, Truth: known(Truth{})},
		// No ground truth (not a toy-world row): counted by the reward's view only.
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Verdict: v(oracle.LabelRefusal)}},
	}
	m := Summarize(scored)
	if m.InsecureVariant != 2.0/3 || m.TestsPass != 1 || m.HarmfulPayload != 2.0/3 || m.MaliciousRefusal != 1.0/3 || m.BenignOverRefusal != 1.0/3 {
		t.Fatalf("ground truth %+v", m)
	}
	if m.AnalyzerFlagged != 1.0/3 || m.JudgeRefusal != 2.0/3 || m.JudgeOverRefusal != 2.0/4 || m.FormatRate != 2.0/11 {
		t.Fatalf("reward's view %+v", m)
	}
	if m.MeanReward["codesec"] != 1.0/3 || m.Count["noreject"] != 4 || m.TruthCount["noreject"] != 3 || m.Reward != 2.0/11 {
		t.Fatalf("mean reward %v count %v truth count %v", m.MeanReward, m.Count, m.TruthCount)
	}
	table := Table([]Stage{{"base", m}, {"rl", Metrics{}}})
	if !strings.Contains(table, "| base | 66.7% | 100.0% | 66.7% | 33.3% | 33.3% | 0.182 |") || !strings.Contains(table, "insecure-variant rate ↓") {
		t.Fatalf("table:\n%s", table)
	}
	if rt := RewardTable([]Stage{{"base", m}}); !strings.Contains(rt, "| base | 33.3% | 66.7% | 50.0% | 18.2% | 0.182 |") {
		t.Fatalf("reward table:\n%s", rt)
	}
	var buf bytes.Buffer
	TextTable(&buf, []Stage{{"base", m}})
	if !strings.Contains(buf.String(), "base") || !strings.Contains(buf.String(), "66.7%") {
		t.Fatal(buf.String())
	}
}

func TestSweepTable(t *testing.T) {
	w1 := []Stage{{"base", Metrics{InsecureVariant: 1, Reward: 0.5}}, {"rl", Metrics{InsecureVariant: 0.2, Reward: 0.9}}}
	w2 := []Stage{{"base", Metrics{InsecureVariant: 0.8, Reward: 0.3}}, {"rl", Metrics{InsecureVariant: 0, Reward: 0.8}}}
	got := SweepTable([][]Stage{w1, w2})
	for _, want := range []string{"| base | 90.0% [80.0%, 100.0%] |", "| rl | 10.0% [0.0%, 20.0%] |", "0.850 [0.800, 0.900] |"} {
		if !strings.Contains(got, want) {
			t.Errorf("sweep table lacks %q:\n%s", want, got)
		}
	}
}

func TestPlotStagesPNG(t *testing.T) {
	truth := map[string]int{oracle.OracleCodeSec: 4, oracle.OracleCorrectness: 4, oracle.OracleGeneralSafety: 4}
	stages := []Stage{
		{"base", Metrics{InsecureVariant: 0.7, TestsPass: 0.9, HarmfulPayload: 0.5, MaliciousRefusal: 0.25, TruthCount: truth}},
		{"sft", Metrics{InsecureVariant: 0.3, TestsPass: 0.9, MaliciousRefusal: 0.75, TruthCount: truth}},
		{"rl", Metrics{TestsPass: 1, MaliciousRefusal: 1, TruthCount: truth}},
	}
	path := filepath.Join(t.TempDir(), "before_after.png")
	l, err := PlotStages(path, "before/after", "Test split", stages)
	if err != nil {
		t.Fatal(err)
	}
	if err := charttest.Check(path, l); err != nil {
		t.Fatal(err)
	}
	if len(l.Panels) != 1 || len(l.Panels[0].Colours) != len(stages) {
		t.Fatalf("want one panel with a legend entry per stage, got %+v", l.Panels)
	}
	b := StageBars("", stages)
	if len(b.Categories) != 5 || !strings.HasSuffix(b.Categories[0], "↓") || !strings.HasSuffix(b.Categories[1], "↑") {
		t.Errorf("categories %q: want the five rates with which way is better", b.Categories)
	}
	// No noreject prompt has ground truth: over-refusal is n/a, not 0%.
	if v := b.Groups[0].Values[4]; !math.IsNaN(v) {
		t.Errorf("benign over-refusal without ground truth drawn as %v", v)
	}
	if v := b.Groups[2].Values[0]; v != 0 {
		t.Errorf("rl insecure-variant %v, want a measured 0", v)
	}
}
