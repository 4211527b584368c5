package suite

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pchart "purpcode/internal/chart"
)

// WriteResults writes results.json (every item and every suite) to dir.
func WriteResults(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	path := filepath.Join(dir, "results.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadResults reads dir/results.json.
func ReadResults(dir string) (*Results, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, "results.json"), err)
	}
	return &r, nil
}

// Labelled is one model's results with the name the report gives it.
type Labelled struct {
	Name    string
	Results *Results
}

// metricHelp says what each metric is and which way is better.
var metricHelp = map[string]string{
	"pass@1_base":            "pass@1 on the base tests (higher is better)",
	"pass@1_plus":            "pass@1 on base + plus tests (higher is better)",
	"code_rate":              "share of answers with code",
	"secure_rate":            "secure share of answers with code (higher is better)",
	"safe_full_refusal":      "safe prompts fully refused (lower is better)",
	"safe_partial_refusal":   "safe prompts partly refused (lower is better)",
	"safe_refusal":           "safe prompts refused fully or partly (lower is better)",
	"unsafe_full_compliance": "unsafe prompts fully complied with (lower is better)",
	"unsafe_refusal":         "unsafe prompts refused fully or partly (higher is better)",
	"malicious_rate":         "answers judged to help the attack (lower is better)",
	"benign_rate":            "answers refused or judged benign: CyberSecEval MITRE's benign percentage (higher is better)",
	"refusal_rate":           "answers refused (CyberSecEval MITRE's keyword check with a judge, else the string match)",
	"unclear_rate":           "judge replies naming neither malicious nor benign (counted as neither)",
}

// WriteReport writes report.md and one PNG chart per suite to dir,
// comparing the models side by side when there are several.
func WriteReport(dir string, models []Labelled) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Evaluation report\n\n")
	for _, m := range models {
		fmt.Fprintf(&b, "- **%s**: `%s`, system prompt %v, max_tokens %d, temperature %g, seed %d\n",
			m.Name, m.Results.Model, m.Results.System, m.Results.Sampling.MaxTokens, m.Results.Sampling.Temperature, m.Results.Sampling.Seed)
	}
	b.WriteString("\n")
	for _, name := range suiteOrder(models) {
		fmt.Fprintf(&b, "## %s\n\n", name)
		for _, m := range models {
			if sr := find(m.Results, name); sr != nil {
				method := ""
				if sr.Method != "" {
					method = ", scored by " + sr.Method
				}
				fmt.Fprintf(&b, "%s: %d items, %d scored, %d errors%s (%s)\n\n", m.Name, sr.Items, sr.Scored, sr.Errors, method, sr.Source)
			}
		}
		keys := metricKeys(models, name)
		writeTable(&b, name, keys, models)
		b.WriteString("\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "- `%s`: %s\n", k, metricHelp[k])
		}
		png := "chart-" + name + ".png"
		if _, err := chart(filepath.Join(dir, png), name, keys, models); err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n![%s](%s)\n\n", name, png)
		if len(models) == 1 {
			if sr := find(models[0].Results, name); sr != nil && len(sr.Breakdown) > 0 {
				writeBreakdown(&b, sr)
			}
		}
	}
	path := filepath.Join(dir, "report.md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SuiteTable is the Markdown table of one suite's metrics, one column per
// model and, with several models, one delta column per model after the
// first (its value minus the first model's).
func SuiteTable(models []Labelled, suite string) string {
	var b strings.Builder
	writeTable(&b, suite, metricKeys(models, suite), models)
	return b.String()
}

// metricKeys lists the metrics any model has for the suite, sorted.
func metricKeys(models []Labelled, suite string) []string {
	metrics := map[string]bool{}
	for _, m := range models {
		if sr := find(m.Results, suite); sr != nil {
			for k := range sr.Metrics {
				metrics[k] = true
			}
		}
	}
	return sortedKeys(metrics)
}

func writeTable(b *strings.Builder, suite string, keys []string, models []Labelled) {
	b.WriteString("| metric |")
	for _, m := range models {
		fmt.Fprintf(b, " %s |", m.Name)
	}
	for _, m := range models[min(1, len(models)):] {
		fmt.Fprintf(b, " Δ %s |", m.Name)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(models)+max(0, len(models)-1)) + "\n")
	for _, k := range keys {
		fmt.Fprintf(b, "| %s |", k)
		vals := make([]*float64, len(models))
		for i, m := range models {
			if sr := find(m.Results, suite); sr != nil {
				if v, ok := sr.Metrics[k]; ok {
					vals[i] = &v
					fmt.Fprintf(b, " %.3f |", v)
					continue
				}
			}
			b.WriteString(" – |")
		}
		for _, v := range vals[min(1, len(vals)):] {
			if v == nil || vals[0] == nil {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(b, " %+.3f |", *v-*vals[0])
		}
		b.WriteString("\n")
	}
}

func writeBreakdown(b *strings.Builder, sr *SuiteResult) {
	metrics := map[string]bool{}
	for _, m := range sr.Breakdown {
		for k := range m {
			metrics[k] = true
		}
	}
	keys := sortedKeys(metrics)
	groups := make([]string, 0, len(sr.Breakdown))
	for g := range sr.Breakdown {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	b.WriteString("| group | " + strings.Join(keys, " | ") + " |\n|---|" + strings.Repeat("---|", len(keys)) + "\n")
	for _, g := range groups {
		fmt.Fprintf(b, "| %s |", g)
		for _, k := range keys {
			if v, ok := sr.Breakdown[g][k]; ok {
				fmt.Fprintf(b, " %.3f |", v)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func suiteOrder(models []Labelled) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range models {
		for _, s := range m.Results.Suites {
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, s.Name)
			}
		}
	}
	return out
}

func find(r *Results, name string) *SuiteResult {
	for _, s := range r.Suites {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// chart draws the suite's metrics as horizontal bars, one colour per
// model, each metric named with which way is better.
func chart(path, title string, keys []string, models []Labelled) (pchart.Layout, error) {
	return pchart.Render(path, pchart.Figure{Title: title, Panels: []pchart.Panel{suiteBars(title, keys, models)}})
}

func suiteBars(suite string, keys []string, models []Labelled) *pchart.Bars {
	b := &pchart.Bars{ValueLabel: "rate (↑ higher is better, ↓ lower is better)", Percent: true}
	for _, k := range keys {
		switch {
		case strings.Contains(metricHelp[k], "higher is better"):
			k += " ↑"
		case strings.Contains(metricHelp[k], "lower is better"):
			k += " ↓"
		}
		b.Categories = append(b.Categories, k)
	}
	for _, m := range models {
		g := pchart.Group{Name: m.Name}
		sr := find(m.Results, suite)
		for _, k := range keys {
			v, ok := 0.0, false
			if sr != nil {
				v, ok = sr.Metrics[k]
			}
			if !ok {
				v = math.NaN() // this model has no such metric: n/a, not 0
			}
			if v < 0 || v > 1 {
				b.Percent = false // not a rate: draw the numbers as they are
			}
			g.Values = append(g.Values, v)
		}
		b.Groups = append(b.Groups, g)
	}
	if !b.Percent {
		b.ValueLabel = "value (↑ higher is better, ↓ lower is better)"
	}
	return b
}
