package pipeline

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteStats prints the manifest's tables: stages with acceptance and
// rejection reasons, per CWE, per strategy, per transform, the
// decontamination and dedup removals, and the output.
func WriteStats(w io.Writer, m *Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	p("run\t%s\tgenerator %s\tseed %d\tconfig %s\t\n", m.Status, m.Config.Generator, m.Config.Sampling.Seed, short(m.ConfigHash))
	p("\n")
	p("stage\titems\tdone\taccepted\tacceptance\trows\trejected\t\n")
	for _, s := range m.Stages {
		p("%s\t%d\t%d\t%d\t%.1f%%\t%d\t%s\t\n", s.Name, s.Items, s.Done, s.Accepted, 100*s.Acceptance, s.Rows, counts(s.Rejected))
	}
	p("\n")
	p("cwe\tattempts\tseeds\tprompts\t\n")
	for _, c := range sortedKeys(m.PerCWE) {
		s := m.PerCWE[c]
		p("%s\t%d\t%d\t%d\t\n", c, s.Attempts, s.Seeds, s.Prompts)
	}
	p("\n")
	p("strategy\trows\t\n")
	for _, k := range sortedKeys(m.PerStrategy) {
		p("%s\t%d\t\n", k, m.PerStrategy[k])
	}
	p("\n")
	p("transform\trows\t\n")
	for _, k := range sortedKeys(m.PerTransform) {
		p("%s\t%d\t\n", k, m.PerTransform[k])
	}
	p("\n")
	p("filter\tinput\tdropped\trows dropped\treasons\tsuites\t\n")
	p("decontamination\t%d\t%d\t%d\t%s\t%s\t\n", m.Decontam.Input, m.Decontam.Dropped, m.Decontam.RowsDropped, counts(m.Decontam.ByReason), counts(m.Decontam.BySuite))
	p("dedup\t%d\t%d\t%d\t%s\t\t\n", m.Dedup.Input, m.Dedup.Dropped, m.Dedup.RowsDropped, counts(m.Dedup.ByReason))
	p("\n")
	p("output\t%s\t%d rows\t%s\t\n", m.Output.File, m.Output.Rows, counts(m.Output.ByOracle))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// counts renders a reason -> count map as "a=1 b=2", sorted by name.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
