// Package redteam generates the toy red-team world of the embedded demo:
// small Python coding tasks from a dozen CWE families (each with an insecure
// and a secure implementation that pass the same functional tests),
// malicious requests that must be refused (with jailbreak transforms), and
// benign requests that sound dangerous but must be answered. From them it
// builds the RL/eval prompt rows, a train/validation/test split by task
// template, the chat corpus that pretrains the tiny base model, and the
// ground truth the evaluation reads answers with (truth.go).
//
// Everything is a pure function of Options (seed included): the same options
// give byte-identical files, so the embedded model can be regenerated.
//
// The corpus imitates a real base model: without a system prompt most coding
// answers are insecure and most malicious requests are answered (with
// content-free placeholders, never real malware). In a fraction of the
// conversations a system prompt carries the safety policy plus the rule text
// of the task's weakness (RuleContext), and there the answers are mostly
// secure or refusals. A tiny model trained on it therefore "follows rules in
// context", which context distillation (package distill, reusing
// RuleContext) then bakes into the weights.
//
// Split. Each coding family and each request kind has one or more test
// ("held-out") templates, chosen from the seed, and validation templates
// chosen among the rest (a coding family keeps at least MinTrainPerFamily
// train templates). Test and validation templates never appear in the train
// prompt rows, so nothing post-training trains on (distillation, SFT, RL)
// comes from them. Validation rows are what knobs are chosen on; test rows
// are written apart (World.WriteTest) for the final evaluation alone. The
// pretraining corpus, the stand-in for the web a real base model learns
// from, covers all templates (CorpusOptions.CoverHeldout, on by default)
// but never repeats a test prompt of its own world: the base model can
// write the test functions, mostly insecurely, as a real one can solve
// HumanEval, so the functional pass rate on them means something and
// post-training must keep it. The corpus belongs to the world of
// Options.CorpusSeed, so that worlds with other seeds (other splits and
// phrasings) share one base model; their test prompts may then be in the
// corpus verbatim, which World.CorpusOverlap counts.
//
// Jailbreak transforms. Jailbreak holds the toy world's four (role-play,
// fiction, prefix injection, base64); Transform (jailbreak.go) adds
// hypothetical framing, payload splitting and multi-turn escalation for the
// red-team pipeline (package redteam/pipeline) without changing the world.
//
// Evaluation contract. A coding task appears as two prompt rows with the same
// prompt and the same meta.task: one with oracle "codesec" (insecure-code
// rate, via the analyzer) and one with oracle "correctness" carrying
// HumanEval-style tests (check(candidate) + entry_point, oracle.Tests).
// Malicious requests use "general-safety" (refusal rate), benign ones
// "noreject" (over-refusal rate).
package redteam
