package distill

import (
	"fmt"
	"sort"
	"strings"
)

// NoCWE is the per-CWE key of rows without meta.cwe (malicious and benign
// requests).
const NoCWE = "none"

// Counts are the results of a group of prompts.
type Counts struct {
	Prompts  int `json:"prompts"`  // prompts sampled
	Verified int `json:"verified"` // prompts with a kept sample: SFT rows
	Easy     int `json:"easy"`     // prompts with >= easy_frac of samples kept
	Samples  int `json:"samples"`
	Kept     int `json:"kept_samples"` // samples with reward >= min_reward
	FormatOK int `json:"format_ok"`    // samples that passed the format gate
	// MeanReward is over all samples of the group.
	MeanReward float64 `json:"mean_reward"`
	rewardSum  float64
}

// Settings are the options that determine the output.
type Settings struct {
	K            int     `json:"k"`
	Temperature  float64 `json:"temperature"`
	TopP         float64 `json:"top_p"`
	MaxNewTokens int     `json:"max_new_tokens"`
	MaxPromptLen int     `json:"max_prompt_len"` // in effect (0 resolved)
	Prefix       string  `json:"prefix"`
	MinReward    float64 `json:"min_reward"`
	EasyFrac     float64 `json:"easy_frac"`
	Seed         uint64  `json:"seed"`
	RuleContext  bool    `json:"rule_context"`
}

// Summary is summary.json. It holds no timings, so that a repeated run
// writes the same file.
type Summary struct {
	Settings Settings `json:"settings"`
	Total    Counts   `json:"total"`
	// Skipped counts rows not sampled, by reason ("too_long").
	Skipped  map[string]int     `json:"skipped"`
	ByOracle map[string]*Counts `json:"by_oracle"`
	// ByCWE is keyed by meta.cwe (NoCWE when absent).
	ByCWE map[string]*Counts `json:"by_cwe"`
}

func newSummary(o Options) *Summary {
	return &Summary{
		Settings: Settings{K: o.K, Temperature: o.Temperature, TopP: o.TopP, MaxNewTokens: o.MaxNewTokens, MaxPromptLen: o.MaxPromptLen,
			Prefix: o.Prefix, MinReward: o.MinReward, EasyFrac: o.EasyFrac, Seed: o.Seed, RuleContext: o.RuleContext != nil},
		Skipped: map[string]int{}, ByOracle: map[string]*Counts{}, ByCWE: map[string]*Counts{},
	}
}

// prompt adds one prompt's outcome to the total and its groups.
func (s *Summary) prompt(oracleName, cwe string, samples []sample, kept int, easy bool) {
	if cwe == "" {
		cwe = NoCWE
	}
	for _, c := range []*Counts{&s.Total, group(s.ByOracle, oracleName), group(s.ByCWE, cwe)} {
		c.Prompts++
		if kept > 0 {
			c.Verified++
		}
		if easy {
			c.Easy++
		}
		c.Kept += kept
		for _, sm := range samples {
			c.Samples++
			c.rewardSum += sm.score.Reward
			if sm.score.Format {
				c.FormatOK++
			}
		}
	}
}

func group(m map[string]*Counts, key string) *Counts {
	c := m[key]
	if c == nil {
		c = &Counts{}
		m[key] = c
	}
	return c
}

// finish computes the means.
func (s *Summary) finish() {
	all := []*Counts{&s.Total}
	for _, m := range []map[string]*Counts{s.ByOracle, s.ByCWE} {
		for _, c := range m {
			all = append(all, c)
		}
	}
	for _, c := range all {
		if c.Samples > 0 {
			c.MeanReward = c.rewardSum / float64(c.Samples)
		}
	}
}

// Table renders the summary as a text table for people.
func (s *Summary) Table() string {
	var b strings.Builder
	t := s.Total
	fmt.Fprintf(&b, "%d prompts sampled (%d skipped), %d samples each at temperature %g\n", t.Prompts, s.skipped(), s.Settings.K, s.Settings.Temperature)
	fmt.Fprintf(&b, "%d verified (reward >= %g) -> %s, %d easy (>= %g of samples verified) -> %s\n\n",
		t.Verified, s.Settings.MinReward, SFTFile, t.Easy, s.Settings.EasyFrac, EasyFile)
	fmt.Fprintf(&b, "%-28s %8s %9s %6s %15s %8s %12s\n", "group", "prompts", "verified", "easy", "kept/samples", "format", "mean reward")
	row := func(name string, c *Counts) {
		format := 0.0
		if c.Samples > 0 {
			format = float64(c.FormatOK) / float64(c.Samples)
		}
		fmt.Fprintf(&b, "%-28s %8d %9d %6d %15s %8.2f %12.3f\n", name, c.Prompts, c.Verified, c.Easy,
			fmt.Sprintf("%d/%d", c.Kept, c.Samples), format, c.MeanReward)
	}
	row("all", &t)
	for _, sec := range []struct {
		label string
		m     map[string]*Counts
	}{{"oracle", s.ByOracle}, {"cwe", s.ByCWE}} {
		keys := make([]string, 0, len(sec.m))
		for k := range sec.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row(sec.label+" "+k, sec.m[k])
		}
	}
	return b.String()
}

func (s *Summary) skipped() int {
	n := 0
	for _, v := range s.Skipped {
		n += v
	}
	return n
}
