package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"purpcode/eval"
	"purpcode/oracle"
	"purpcode/sandbox"
)

// runEval answers every prompt of a suite once (greedy by default) and
// reports the recipe's four rates plus format and mean reward per oracle.
func runEval(args []string, stdout, stderr io.Writer) error {
	if suiteMode(args) {
		return runEvalSuite(args, stdout, stderr)
	}
	fs := newFlags("eval", stderr)
	modelDir := fs.String("model", "", "model `dir` to evaluate")
	var data []string
	fs.Var(listFlag{&data}, "data", "prompt JSONL `files` {id, messages|prompt, oracle, tests?, meta?}")
	out := fs.String("out", "", "write every answer with its score to this JSONL `file`")
	prefix := fs.String("prefix", "## Analysis\\n", "assistant prefix prefilled before decoding (escapes allowed)")
	maxNew := fs.Int("max-new-tokens", 256, "tokens per answer")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	seed := fs.Uint64("seed", 1, "sampling seed (with --temperature > 0)")
	asJSON := fs.Bool("json", false, "print the metrics as JSON")
	judgeDir := addJudgeFlag(fs)
	cpu := addCPUFlags(fs)
	configPath := addFlagConfig(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyFlagConfig(fs, *configPath); err != nil {
		return err
	}
	if *modelDir == "" || len(data) == 0 {
		fmt.Fprintln(stderr, "purpcode eval: --model and --data are required")
		fs.Usage()
		return errUsage
	}
	pfx, err := unescapePrefix(*prefix)
	if err != nil {
		return fmt.Errorf("--prefix %w", err)
	}
	rows, err := readDistillRows(data)
	if err != nil {
		return err
	}
	be, closeBE, err := cpu.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	m, tok, eos, err := loadModelDir(*modelDir, be)
	if err != nil {
		return err
	}
	judge, err := loadJudge(*judgeDir, be)
	if err != nil {
		return err
	}
	oc := oracle.DefaultConfig()
	oc.AlwaysRunOracle = true
	scorer, closeScorer, err := oracle.NewScorerFor(rows, judge, oc, 0)
	if err != nil {
		return err
	}
	defer closeScorer()
	// The ground-truth tests-pass rate runs the tests with eval's own
	// harness; without a sandbox it prints as n/a.
	sb, err := sandbox.New(sandbox.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "purpcode eval: no sandbox, the ground-truth tests-pass rate is not measured: %v\n", err)
		sb = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	scored, metrics, err := eval.Run(ctx, m, tok, scorer, rows, eval.Options{Prefix: pfx, MaxNewTokens: *maxNew, Temperature: *temp, Seed: *seed, EOS: eos, Sandbox: sb})
	if err != nil {
		return err
	}
	if *out != "" {
		if err := eval.WriteScored(*out, scored); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(metrics)
	}
	eval.TextTable(stdout, []eval.Stage{{Name: "model", Metrics: metrics}})
	for _, o := range metrics.Oracles() {
		fmt.Fprintf(stdout, "%-15s %4d prompts, mean reward %.3f\n", o, metrics.Count[o], metrics.MeanReward[o])
	}
	return nil
}
