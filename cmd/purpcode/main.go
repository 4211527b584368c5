package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand. run gets the arguments after the command name
// and writes its normal output to stdout.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commandTable lists the subcommands; add one line per new command file.
func commandTable() []command {
	return []command{
		{"version", "print the version and the compute backends found", runVersion},
		{"run", "the whole recipe: world, distill, SFT, RL, evaluation and report", runRecipe},
		{"sft", "supervised fine-tuning (rule learning stage)", runSFT},
		{"rl", "GRPO with in-process oracles and single-step dynamic sampling", runRL},
		{"distill", "rule learning by context distillation: sample with rules, verify, keep the best", runDistill},
		{"tokenize", "encode/decode text and chat rows with a tokenizer.json", runTokenize},
		{"analyze", "static security analysis of Python code (JSON or SARIF)", runAnalyze},
		{"init", "write a randomly initialised model from a config.json", runInit},
		{"bench", "throughput: training tokens/s and TFLOP/s, prefill and decode tokens/s", runBench},
		{"eval", "held-out metrics: insecure-code, functional pass, refusal and over-refusal rates", runEval},
		{"score", "loss and perplexity of a model on pre-tokenized rows", runScore},
		{"generate", "sample completions with per-token log-probs", runGenerate},
		{"reward", "score responses with the in-process oracles", runReward},
		{"synth", "generate the toy red-team world (prompts, tests, corpus)", runSynth},
		{"train-tokenizer", "train a byte-level BPE tokenizer.json (+ chat template config) from a text corpus", runTrainTokenizer},
		{"device", "report the CUDA driver, NVRTC and cuBLASLt found, and the devices", runDevice},
	}
}

// errUsage marks an error already explained by the flag package's usage text.
var errUsage = errors.New("usage")

// exitCoder lets a command choose a non-zero exit status that is not an
// error (e.g. `analyze` exits 1 when findings remain).
type exitCoder interface{ ExitCode() int }

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	cmds := commandTable()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ec exitCoder
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &ec):
			return ec.ExitCode()
		}
		fmt.Fprintf(stderr, "purpcode %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "purpcode: unknown command %q\n\n", args[0])
	usage(stderr, cmds)
	return 2
}

func usage(w io.Writer, cmds []command) {
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	fmt.Fprintln(w, "usage: purpcode <command> [flags]\n\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nrun 'purpcode <command> -h' for the flags of one command")
}

// newFlags returns a FlagSet that reports errors instead of exiting, with its
// usage written to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("purpcode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and maps a flag error to errUsage (already printed).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
