package eval

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/analyzer"
	"purpcode/oracle"
)

func TestSummarizeAndTable(t *testing.T) {
	v := func(label string) *oracle.Verdict { return &oracle.Verdict{Label: label} }
	scored := []Scored{
		{Row: oracle.Row{Oracle: "codesec"}, Score: oracle.Score{OracleRan: true, Format: true, Reward: 1, OracleScore: 1}},
		{Row: oracle.Row{Oracle: "codesec"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Findings: make([]analyzer.Finding, 1)}},
		{Row: oracle.Row{Oracle: "correctness"}, Score: oracle.Score{OracleRan: true, Format: true, OracleScore: 1, Reward: 1}},
		{Row: oracle.Row{Oracle: "general-safety"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelRefusal)}},
		{Row: oracle.Row{Oracle: "general-safety"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Verdict: v(oracle.LabelHarmful)}},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 0, Verdict: v(oracle.LabelRefusal)}},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelAppropriate)}},
		{Row: oracle.Row{Oracle: "noreject"}, Score: oracle.Score{OracleRan: true, OracleScore: 1, Verdict: v(oracle.LabelAppropriate)}},
	}
	m := Summarize(scored)
	if m.InsecureRate != 0.5 || m.PassRate != 1 || m.RefusalRate != 0.5 || m.OverRefusal != 1.0/3 || m.FormatRate != 2.0/8 {
		t.Fatalf("metrics %+v", m)
	}
	if m.MeanReward["codesec"] != 0.5 || m.Count["noreject"] != 3 || m.Reward != 0.25 {
		t.Fatalf("mean reward %v count %v", m.MeanReward, m.Count)
	}
	table := Table([]Stage{{"base", m}, {"rl", Metrics{}}})
	if !strings.Contains(table, "| base | 50.0% | 100.0% | 50.0% | 33.3% | 25.0% | 0.250 |") {
		t.Fatalf("table:\n%s", table)
	}
	var buf bytes.Buffer
	TextTable(&buf, []Stage{{"base", m}})
	if !strings.Contains(buf.String(), "base") {
		t.Fatal(buf.String())
	}
}

func TestPlotsArePNGs(t *testing.T) {
	dir := t.TempDir()
	curves := filepath.Join(dir, "c.png")
	if err := PlotCurves(curves, "reward", "step", "reward", []Series{{Name: "mean", X: []float64{1, 2, 3}, Y: []float64{0.1, 0.4, 0.6}}}); err != nil {
		t.Fatal(err)
	}
	bars := filepath.Join(dir, "b.png")
	if err := PlotStages(bars, "before/after", []Stage{{"base", Metrics{InsecureRate: 0.7, PassRate: 0.9}}, {"rl", Metrics{InsecureRate: 0.1, PassRate: 0.9}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{curves, bars} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 300 {
			t.Fatalf("%s: not a usable PNG: %v", p, err)
		}
	}
}
