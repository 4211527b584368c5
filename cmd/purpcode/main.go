package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"purpcode/internal/yamlconf"
	"purpcode/recipe"
	"purpcode/train/grpo"
	"purpcode/train/sft"
)

// command is one subcommand. run gets the arguments after the command name
// and writes its normal output to stdout.
type command struct {
	name    string
	summary string // one line, shown in `purpcode help` and atop the command's help
	run     func(args []string, stdout, stderr io.Writer) error
	usage   string // synopsis after "purpcode NAME"; "" means "[flags]"
	about   string // optional paragraph of the command's help
	// config returns the defaults of the command's typed --config file,
	// whose keys the help lists; nil when the command has none.
	config func() any
}

// commandTable lists the subcommands; add one entry per new command file.
func commandTable() []command {
	return []command{
		{name: "version", summary: "print the version and the compute backends found", run: runVersion},
		{name: "run", summary: "the whole recipe: world, distill, SFT, RL, evaluation and report", run: runRecipe,
			usage: "[--config recipe.yaml] [--out DIR] [--resume | --force] [--seeds N]",
			about: "Runs every stage on one base model and writes each stage's outputs, metrics and the final\n" +
				"comparison table under the run directory. Stage sections take the keys of `purpcode distill`,\n" +
				"`sft` and `rl`; model, data and output paths are filled in by the recipe. --seeds N runs N worlds\n" +
				"and writes a table of mean, min and max per metric and stage (sweep.md). Ctrl-C stops after saving\n" +
				"what is done and prints the command that continues; --resume skips the finished stages (markers in\n" +
				"done/) and continues SFT and RL from their last checkpoint.",
			config: func() any { return recipe.Default() }},
		{name: "sft", summary: "supervised fine-tuning (rule learning stage)", run: runSFT,
			usage:  "--model DIR --data FILE.jsonl --out DIR [--config FILE.yaml] [flags]",
			about:  "Writes metrics.jsonl and checkpoint-STEP/ model directories to --out.",
			config: func() any { return sft.DefaultConfig() }},
		{name: "rl", summary: "GRPO with in-process oracles and single-step dynamic sampling", run: runRL,
			usage:  "--model DIR --data PROMPTS.jsonl --out DIR [--config FILE.yaml] [flags]",
			about:  "Writes metrics.jsonl and checkpoint-STEP/ model directories to --out.",
			config: func() any { return grpo.DefaultConfig() }},
		{name: "distill", summary: "rule learning by context distillation: sample with rules, verify, keep the best", run: runDistill,
			usage: "--model DIR --data PROMPTS.jsonl --out DIR [--config FILE.yaml] [flags]",
			about: "Samples k answers per prompt with the safety policy and the prompt's rules in the system prompt,\n" +
				"verifies them with the prompt's oracle, and keeps the best as an SFT row without the rules;\n" +
				"prompts mostly solved already are listed in easy_ids.txt for RL to skip."},
		{name: "tokenize", summary: "encode/decode text and chat rows with a tokenizer.json", run: runTokenize,
			usage: "--tokenizer DIR [--data FILE.jsonl] [flags]", about: "Reads standard input when --data is not given."},
		{name: "analyze", summary: "static security analysis of Python code (text, JSON or SARIF)", run: runAnalyze,
			usage: "[flags] [FILE ...|-]",
			about: "Analyses Python files (standard input when no file or \"-\" is given). Exit status 0: no finding\n" +
				"at or above --min-severity; 1: findings; 2: a file could not be read or parsed (or a usage error)."},
		{name: "init", summary: "write a randomly initialised model from a config.json", run: runInit,
			usage: "--config config.json --out DIR [flags]"},
		{name: "bench", summary: "throughput: training tokens/s and TFLOP/s, prefill and decode tokens/s", run: runBench},
		{name: "eval", summary: "held-out metrics from the toy world's ground truth, or the public suites with --suite", run: runEval,
			usage: "--model DIR --data PROMPTS.jsonl [flags]",
			about: "With --suite NAME[,NAME...] (or --compare DIRS) it runs the paper's public suites instead\n" +
				"(CyberSecEval, XSTest, HumanEval+, MBPP+, or JSONL suite files) on --model or --endpoint;\n" +
				"`purpcode eval --suite all --help` lists those flags."},
		{name: "score", summary: "loss and perplexity of a model on pre-tokenized rows", run: runScore,
			usage: "--model DIR --data ROWS.jsonl [flags]"},
		{name: "generate", summary: "sample completions with per-token log-probs", run: runGenerate,
			usage: "--model DIR (--prompt TEXT | --data PROMPTS.jsonl | --data -) [flags]",
			about: "Writes one JSON line per sample: id, sample, text, token_ids, logprobs, sampling_logprobs,\n" +
				"finish_reason. --data - reads the prompt rows from standard input."},
		{name: "serve", summary: "OpenAI-compatible HTTP server (chat and text completions) over the rollout engine", run: runServe,
			usage: "--model DIR [--addr 127.0.0.1:8000] [flags]",
			about: "Serves /v1/chat/completions and /v1/completions (streaming or not), /v1/models and /health;\n" +
				"all requests share one continuous batch. Stops on SIGINT/SIGTERM after the requests in flight."},
		{name: "reward", summary: "score responses with the in-process oracles", run: runReward,
			usage: "--data ROWS.jsonl [--json] [flags]",
			about: "reward = format gate x the row's oracle (codesec, correctness, general-safety or noreject;\n" +
				"judges: --judge-model or the heuristic classifier). Finding lines count from the first line\n" +
				"of the code block they are in."},
		{name: "synth", summary: "generate the toy red-team world (prompts, tests, corpus)", run: runSynth,
			usage: "--out DIR [flags]"},
		{name: "redteam", summary: "red-team prompts at scale: Rule2Code, Vul2Prompt, jailbreaks, dedup, decontamination", run: runRedteam, usage: "--out DIR --generator-endpoint URL [flags] | stats DIR", about: redteamAbout},
		{name: "train-tokenizer", summary: "train a byte-level BPE tokenizer.json (+ chat template config) from a text corpus", run: runTrainTokenizer,
			usage: "--corpus FILE [--corpus FILE...] --vocab N --out DIR [flags]",
			about: "Trains a byte-level BPE tokenizer (Qwen layout) on plain-text files, one document per paragraph\n" +
				"(blank-line separated), and writes tokenizer.json, tokenizer_config.json and generation_config.json."},
		{name: "device", summary: "report the CUDA driver, NVRTC and cuBLASLt found, and the devices", run: runDevice},
		{name: "launch", summary: "start N local ranks of a command with torchrun's environment", run: runLaunch, usage: "--nproc-per-node N [flags] -- COMMAND [flags]", about: launchAbout},
		{name: "export", summary: "consolidate a (sharded) training checkpoint into a Hugging Face model directory", run: runExport, usage: "--from CHECKPOINT_DIR --out DIR [--dtype bf16|f32] [flags]", about: exportAbout},
		{name: "plan", summary: "per-GPU memory plan on N GPUs (tensor + data parallel) and each rank's checkpoint reads", run: runPlan, usage: "--model DIR|qwen2.5-32b|qwen2.5-7b [--gpus 8] [--gpu-mem 80GiB] [--tp N] [flags]"},
	}
}

// errUsage marks a usage error whose message the command has printed;
// mainExit adds the line pointing at --help and exits 2.
var errUsage = errors.New("usage")

// exitCoder lets a command choose a non-zero exit status that is not an
// error (e.g. `analyze` exits 1 when findings remain).
type exitCoder interface{ ExitCode() int }

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	cmds := commandTable()
	if len(args) == 0 {
		listCommands(stderr, cmds)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 && args[0] == "help" {
			return mainExit([]string{args[1], "--help"}, stdout, stderr)
		}
		listCommands(stdout, cmds)
		return 0
	}
	c, ok := findCommand(cmds, args[0])
	if !ok {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.name
		}
		msg := fmt.Sprintf("purpcode: unknown command %q", args[0])
		if s := yamlconf.Suggest(args[0], names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		fmt.Fprintf(stderr, "%s\nrun 'purpcode help' for the list of commands\n", msg)
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	var help helpRequest
	var ferr flagError
	var ec exitCoder
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		if err := writeHelp(stdout, c, help.fs, cmds); err != nil {
			fmt.Fprintf(stderr, "purpcode %s: %v\n", c.name, err)
			return 1
		}
		return 0
	case errors.As(err, &ferr):
		fmt.Fprintf(stderr, "purpcode %s: %v\n%s", c.name, ferr, helpHint(c.name))
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprint(stderr, helpHint(c.name))
		return 2
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	fmt.Fprintf(stderr, "purpcode %s: %v\n", c.name, err)
	return 1
}

func findCommand(cmds []command, name string) (command, bool) {
	for _, c := range cmds {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// helpHint is the one line a usage error ends with.
func helpHint(name string) string {
	return fmt.Sprintf("run 'purpcode %s --help' for usage\n", name)
}

// newFlags returns a FlagSet that reports errors instead of exiting. Help
// and flag errors are printed by mainExit (help on stdout from the command
// table, errors as one line plus a pointer to --help), so the FlagSet
// itself prints nothing and a Usage function set on it is not used.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("purpcode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; -h/--help becomes a helpRequest and a bad flag
// a flagError, both printed by mainExit.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return helpRequest{fs}
	}
	return flagError{msg: flagMessage(fs, err)}
}

// helpRequest is -h/--help: mainExit prints the command's help to stdout.
type helpRequest struct{ fs *flag.FlagSet }

func (helpRequest) Error() string { return "help requested" }
func (helpRequest) Unwrap() error { return flag.ErrHelp }

// flagError is a bad command line, reported in one line.
type flagError struct{ msg string }

func (e flagError) Error() string { return e.msg }
func (flagError) Unwrap() error   { return errUsage }

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value ("[^"]*") for (?:flag )?-([\w-]+): `)

// flagMessage rewords the flag package's errors with --name spelling and a
// guess for an unknown flag.
func flagMessage(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		msg = "unknown flag --" + name
		if s := yamlconf.Suggest(strings.ReplaceAll(name, "-", "_"), underscored(names)); s != "" {
			msg += " (did you mean --" + strings.ReplaceAll(s, "_", "-") + "?)"
		}
		return msg
	}
	// `invalid value "abc" for flag -lr: parse error` names the value's
	// kind instead, like a config file error.
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			if g, ok := f.Value.(flag.Getter); ok && g.Get() != nil {
				return fmt.Sprintf("--%s: want %s, got %s", m[2], yamlconf.Describe(reflect.TypeOf(g.Get())), m[1])
			}
		}
	}
	for _, p := range []string{"for flag -", "for -", "argument: -"} {
		msg = strings.Replace(msg, p, strings.TrimSuffix(p, "-")+"--", 1)
	}
	return msg
}

func underscored(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ReplaceAll(n, "-", "_")
	}
	return out
}
