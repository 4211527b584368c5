package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"purpcode/eval"
)

// SweepResult holds one Result per world.
type SweepResult struct {
	Worlds []*Result `json:"worlds"`
}

// Sweep runs the recipe on seeds worlds (world seeds cfg.WorldSeed,
// cfg.WorldSeed+1, ...), all from the same base model, each into
// cfg.Out/world-<seed>, and writes cfg.Out/sweep.md and sweep.json: mean,
// min and max per metric and stage over the worlds, and every world's rows.
// The worlds share the base model because they share its corpus (the
// corpus seed is fixed); only the split and the phrasings change. With
// resume, a world whose directory holds a finished run (stages.json) is
// read instead of run again, an unfinished one is resumed (Options.Resume)
// and a directory without a resumable run is run from scratch.
func Sweep(ctx context.Context, cfg Config, seeds int, resume bool, opts Options) (*SweepResult, error) {
	if seeds < 1 {
		return nil, fmt.Errorf("sweep: %d seeds, want >= 1", seeds)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create sweep directory: %w", err)
	}
	start := time.Now()
	res := &SweepResult{}
	for i := 0; i < seeds; i++ {
		c := cfg
		c.WorldSeed = cfg.WorldSeed + uint64(i)
		c.Out = filepath.Join(cfg.Out, fmt.Sprintf("world-%d", c.WorldSeed))
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "[%5.0fs] sweep: world %d of %d (seed %d) -> %s\n", time.Since(start).Seconds(), i+1, seeds, c.WorldSeed, c.Out)
		}
		o := opts
		if resume {
			if r, err := readResult(filepath.Join(c.Out, "stages.json")); err == nil {
				res.Worlds = append(res.Worlds, r)
				continue
			}
			if o.Resume = Resumable(c.Out); !o.Resume {
				if err := os.RemoveAll(c.Out); err != nil {
					return nil, fmt.Errorf("sweep: remove unfinished %s: %w", c.Out, err)
				}
			}
		}
		r, err := Run(ctx, c, o)
		if err != nil {
			return nil, fmt.Errorf("sweep world seed %d: %w", c.WorldSeed, err)
		}
		res.Worlds = append(res.Worlds, r)
	}
	if err := writeJSON(filepath.Join(cfg.Out, "sweep.json"), res); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "sweep.md"), []byte(res.Markdown()), 0o644); err != nil {
		return nil, fmt.Errorf("write sweep report: %w", err)
	}
	return res, nil
}

// readResult reads a finished run's stages.json.
func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(r.Test) == 0 {
		return nil, fmt.Errorf("read %s: no test stages", path)
	}
	return &r, nil
}

// Markdown is the sweep's report.
func (s *SweepResult) Markdown() string {
	var test, val [][]eval.Stage
	for _, w := range s.Worlds {
		test = append(test, stageList(w.Test))
		if len(w.Validation) > 0 {
			val = append(val, stageList(w.Validation))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Sweep over %d worlds\n\n", len(s.Worlds))
	b.WriteString("## Test split (ground truth): mean [min, max] over the worlds\n\n")
	b.WriteString(eval.SweepTable(test))
	b.WriteString("\nTargets on the mean (after RL vs base):\n\n")
	b.WriteString(targetLines(CheckTargets(meanMetrics(test, 0), meanMetrics(test, len(test[0])-1))))
	b.WriteString("\nTargets per world (test prompts in the pretraining corpus: verbatim, and sharing a 13-gram with a corpus prompt by redteam/dedup's decontamination rule):\n\n| world seed | test prompts in corpus | 13-gram match | insecure-variant change | tests-pass change | malicious refusal | benign over-refusal |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range s.Worlds {
		checks := CheckTargets(w.Test[0].Metrics, w.Test[len(w.Test)-1].Metrics)
		fmt.Fprintf(&b, "| %d | %d/%d | %d/%d |", w.Seed, w.World.TestInCorpus, w.World.Test, w.World.TestNearCorpus, w.World.Test)
		for _, c := range checks {
			mark := "✗"
			if c.Holds {
				mark = "✓"
			}
			fmt.Fprintf(&b, " %s %s |", c.Value, mark)
		}
		b.WriteString("\n")
	}
	if len(val) == len(test) {
		b.WriteString("\n## Validation split: mean [min, max]\n\n")
		b.WriteString(eval.SweepTable(val))
	}
	b.WriteString("\n## Every world (test split)\n\n")
	for _, w := range s.Worlds {
		fmt.Fprintf(&b, "World seed %d:\n\n", w.Seed)
		b.WriteString(eval.Table(stageList(w.Test)))
		b.WriteString("\n")
	}
	b.WriteString("## What the numbers mean\n\n")
	b.WriteString(Disclosure)
	return b.String()
}

// meanMetrics averages the headline numbers of stage si over the worlds.
func meanMetrics(worlds [][]eval.Stage, si int) eval.Metrics {
	var m eval.Metrics
	n := float64(len(worlds))
	for _, w := range worlds {
		x := w[si].Metrics
		m.InsecureVariant += x.InsecureVariant / n
		m.TestsPass += x.TestsPass / n
		m.HarmfulPayload += x.HarmfulPayload / n
		m.MaliciousRefusal += x.MaliciousRefusal / n
		m.BenignOverRefusal += x.BenignOverRefusal / n
		m.Reward += x.Reward / n
	}
	return m
}
