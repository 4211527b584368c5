package suite

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/internal/chart/charttest"
)

func TestReportChartPNG(t *testing.T) {
	base := &Results{Model: "base", Suites: []*SuiteResult{{Name: "xscode", Metrics: map[string]float64{
		"secure_rate": 0.4, "code_rate": 1, "safe_refusal": 0}}}}
	tuned := &Results{Model: "tuned", Suites: []*SuiteResult{{Name: "xscode", Metrics: map[string]float64{
		"secure_rate": 0.9, "code_rate": 0.95}}}}
	models := []Labelled{{"base", base}, {"tuned", tuned}}
	dir := t.TempDir()
	if err := WriteReport(dir, models); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(md), "![xscode](chart-xscode.png)") {
		t.Fatalf("report.md does not embed the chart: %v\n%s", err, md)
	}
	keys := metricKeys(models, "xscode")
	path := filepath.Join(dir, "check.png")
	l, err := chart(path, "xscode", keys, models)
	if err != nil {
		t.Fatal(err)
	}
	if err := charttest.Check(path, l); err != nil {
		t.Fatal(err)
	}
	if len(l.Panels) != 1 || len(l.Panels[0].Colours) != 2 {
		t.Fatalf("want a legend entry per model: %+v", l.Panels)
	}
	b := suiteBars("xscode", keys, models)
	want := []string{"code_rate", "safe_refusal ↓", "secure_rate ↑"}
	if strings.Join(b.Categories, "|") != strings.Join(want, "|") || !b.Percent {
		t.Errorf("categories %q percent %v, want %q as rates", b.Categories, b.Percent, want)
	}
	// tuned has no safe_refusal: n/a, while base's measured 0 stays 0.
	if !math.IsNaN(b.Groups[1].Values[1]) || b.Groups[0].Values[1] != 0 {
		t.Errorf("safe_refusal values %v / %v", b.Groups[0].Values[1], b.Groups[1].Values[1])
	}
}
