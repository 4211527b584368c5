package main

import (
	"fmt"
	"io"

	"purpcode/redteam"
)

// runSynth writes the toy red-team world: prompt rows of both splits, the
// pretraining corpus (JSONL and plain text) and a summary.
func runSynth(args []string, stdout, stderr io.Writer) error {
	def := redteam.DefaultOptions()
	fs := newFlags("synth", stderr)
	out := fs.String("out", "", "output directory (created if missing)")
	seed := fs.Uint64("seed", def.Seed, "random seed of the split and the phrasings; the same seed gives byte-identical files")
	corpusSeed := fs.Uint64("corpus-seed", 0, "seed of the world whose corpus is written (default: --seed)")
	corpusWorlds := fs.Int("corpus-worlds", 1, "decontaminate the corpus against the test prompts of this many worlds, seeds corpus-seed, corpus-seed+1, ... (one base model for a sweep)")
	size := fs.Int("corpus-size", def.Corpus.Size, "pretraining corpus conversations")
	sysFrac := fs.Float64("system-frac", def.Corpus.SystemFrac, "share of corpus conversations with the rule context as system prompt")
	insecure := fs.Float64("insecure-frac", def.Corpus.InsecureFrac, "share of insecure coding answers without a system prompt")
	refuse := fs.Float64("refuse-frac", def.Corpus.RefuseFrac, "share of refused malicious requests without a system prompt")
	sysSecure := fs.Float64("system-secure-frac", def.Corpus.SystemSecureFrac, "share of secure coding answers with a system prompt")
	sysRefuse := fs.Float64("system-refuse-frac", def.Corpus.SystemRefuseFrac, "share of refused malicious requests with a system prompt")
	cover := fs.Bool("cover-heldout", def.Corpus.CoverHeldout, "let the corpus draw fresh instances of held-out templates (never a held-out prompt), so the base model has the skills held-out tasks need")
	trainTasks := fs.Int("train-tasks", def.TrainTasksPerTemplate, "coding tasks per train template")
	heldTasks := fs.Int("heldout-tasks", def.HeldoutTasksPerTemplate, "coding tasks per held-out template")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "purpcode synth: --out is required and no positional arguments are accepted")
		fs.Usage()
		return errUsage
	}
	o := def
	o.Seed, o.CorpusSeed = *seed, *seed
	if *corpusSeed != 0 {
		o.CorpusSeed = *corpusSeed
	}
	o.CorpusWorlds = *corpusWorlds
	o.Corpus.Size = *size
	o.Corpus.SystemFrac = *sysFrac
	o.Corpus.CoverHeldout = *cover
	o.Corpus.InsecureFrac = *insecure
	o.Corpus.RefuseFrac = *refuse
	o.Corpus.SystemSecureFrac = *sysSecure
	o.Corpus.SystemRefuseFrac = *sysRefuse
	o.TrainTasksPerTemplate = *trainTasks
	o.HeldoutTasksPerTemplate = *heldTasks
	w, err := redteam.Generate(o)
	if err != nil {
		return err
	}
	files, err := w.WriteDir(*out)
	if err != nil {
		return err
	}
	test, err := w.WriteTest(*out)
	if err != nil {
		return err
	}
	files = append(files, test)
	s := w.Summarize()
	for _, split := range []string{redteam.SplitTrain, redteam.SplitValidation, redteam.SplitTest} {
		p := s.Prompts[split]
		fmt.Fprintf(stdout, "%-10s prompts: %d coding (%d tasks x codesec+correctness), %d malicious, %d benign\n",
			split, p[redteam.KindCoding], p[redteam.KindCoding]/2, p[redteam.KindMalicious], p[redteam.KindBenign])
	}
	fmt.Fprintf(stdout, "corpus   %d conversations: %d coding, %d malicious, %d benign\n",
		s.Corpus.Total, s.Corpus.ByKind[redteam.KindCoding], s.Corpus.ByKind[redteam.KindMalicious], s.Corpus.ByKind[redteam.KindBenign])
	fmt.Fprintf(stdout, "test templates: %v\nvalidation templates: %v\n", s.TestTemplates, s.ValidationTemplates)
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return nil
}
