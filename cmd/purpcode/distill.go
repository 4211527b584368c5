package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"purpcode/distill"
	"purpcode/generate"
	"purpcode/internal/progress"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/redteam"
	"purpcode/tokenizer"
)

func runDistill(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("distill", stderr)
	def := distill.DefaultOptions()
	model := fs.String("model", "", "Hugging Face model `dir` to sample from (required)")
	var data []string
	fs.Var(listFlag{&data}, "data", "prompt JSONL `files` {id, messages|prompt, oracle, tests?, meta?} (required; repeatable or comma-separated)")
	out := fs.String("out", "", "output `dir`: sft.jsonl, easy_ids.txt, summary.json, summary.txt (required)")
	k := fs.Int("k", def.K, "samples per prompt")
	temp := fs.Float64("temperature", def.Temperature, "sampling temperature")
	topP := fs.Float64("top-p", def.TopP, "nucleus sampling")
	maxNew := fs.Int("max-new-tokens", def.MaxNewTokens, "max new tokens per sample")
	maxPrompt := fs.Int("max-prompt-len", 0, "skip prompts (rule context included) longer than this many tokens (0: max_position_embeddings - max-new-tokens)")
	seed := fs.Uint64("seed", 0, "seed of the samples (with each row's id)")
	minReward := fs.Float64("min-reward", def.MinReward, "reward a sample needs to be kept")
	easyFrac := fs.Float64("easy-frac", def.EasyFrac, "share of verified samples that makes a prompt easy (listed for RL to skip)")
	prefix := fs.String("prefix", `## Analysis\n`, "assistant prefix prefilled before sampling (Go escapes)")
	rules := fs.Bool("rules", true, "put the safety policy and the row's rules (by meta.family) in the system prompt; false: plain best-of-k")
	samples := fs.Bool("samples", false, "also write samples.jsonl with every sample and its score")
	batch := fs.Int("batch", 0, "sequences decoding at once (0: 32)")
	workers := fs.Int("score-workers", 0, "concurrent oracle calls (0: cores)")
	noCode := fs.Float64("no-code-score", oracle.DefaultCodeSecOptions().NoCodeScore, "codesec score of an answer without Python code")
	cpu := addCPUFlags(fs)
	judgeDir := addJudgeFlag(fs)
	configPath := addFlagConfig(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyFlagConfig(fs, *configPath); err != nil {
		return err
	}
	if fs.NArg() > 0 || *model == "" || len(data) == 0 || *out == "" {
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "purpcode distill: unexpected argument %q\n", fs.Arg(0))
		} else {
			fmt.Fprintln(stderr, "purpcode distill: --model, --data and --out are required")
		}
		return errUsage
	}
	pfx, err := unescapePrefix(*prefix)
	if err != nil {
		return fmt.Errorf("--prefix %w", err)
	}
	opts := distill.DefaultOptions()
	opts.K, opts.Temperature, opts.TopP, opts.MaxNewTokens, opts.MaxPromptLen = *k, *temp, *topP, *maxNew, *maxPrompt
	opts.Seed, opts.MinReward, opts.EasyFrac, opts.Prefix = *seed, *minReward, *easyFrac, pfx
	opts.Out, opts.WriteSamples, opts.Batch, opts.ScoreWorkers, opts.Log = *out, *samples, *batch, *workers, stderr
	if *rules {
		opts.RuleContext = distillRuleContext
	}
	if err := opts.Validate(); err != nil {
		return err
	}

	rows, err := readDistillRows(data)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return err
	}
	be, closeBE, err := cpu.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	m, err := qwen2.LoadInference(*model, be)
	if err != nil {
		return err
	}
	if opts.EOS, err = generate.StopTokens(*model, m.Cfg, tok); err != nil {
		return err
	}
	oc := oracle.DefaultConfig()
	oc.CodeSec.NoCodeScore = *noCode
	judge, err := loadJudge(*judgeDir, be)
	if err != nil {
		return err
	}
	scorer, closeScorer, err := oracle.NewScorerFor(rows, judge, oc, *workers)
	if err != nil {
		return err
	}
	defer closeScorer()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pout := progress.New(stderr)
	opts.Log = pout
	bar := pout.Counter("distill", "samples", opts.K)
	opts.OnProgress = bar.Update
	opts.OnVerified = func(verified, scored int) { bar.Note(distill.AcceptanceNote(verified, scored)) }
	res, err := distill.Run(ctx, m, tok, scorer, rows, opts)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Summary.Table())
	fmt.Fprintf(stdout, "\nwrote %s (%d tokens sampled in %.1fs)\n", *out, res.Tokens, res.GenerateS+res.ScoreWaitS)
	return nil
}

// distillRuleContext is the system prompt of a row in context
// distillation: the red-team catalog's policy and the rules of the row's
// meta.family (the policy alone for malicious and benign rows).
func distillRuleContext(row oracle.Row) string {
	family, _ := row.Meta["family"].(string)
	return redteam.RuleContext(family)
}

// readDistillRows reads prompt files (errors name file:line) and rejects
// an id used in two files: ids seed the samples and name the easy prompts.
func readDistillRows(paths []string) ([]oracle.Row, error) {
	var rows []oracle.Row
	seen := map[string]string{}
	for _, p := range paths {
		rs, err := oracle.ReadRows(p)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if prev, dup := seen[r.ID]; dup {
				return nil, fmt.Errorf("%s: prompt id %q also in %s", p, r.ID, prev)
			}
			seen[r.ID] = p
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}
