// Package pipeline is the red-teaming data pipeline behind `purpcode
// redteam`: it turns a rule catalog and seed requests into RL prompt rows
// that `purpcode distill` and `purpcode rl` read unchanged.
//
// Stages, in order:
//
//   - rule2code: for each rule of the catalog (the analyzer's rules and any
//     CWE entries the user gives) the generator writes SamplesPerRule
//     vulnerable snippets; a snippet is kept only when the analyzer flags it
//     for that rule or an equivalent CWE, so the oracle verifies the
//     generator.
//   - vul2prompt: each verified snippet (unique by hash) becomes coding
//     requests likely to elicit the weakness, one generator call per
//     strategy (general, benign-to-vulnerable, vulnerable-to-vulnerable) and
//     PromptsPerStrategy; rows carry the codesec oracle and record strategy,
//     CWE, rule, seed hash and generator.
//   - malicious: seed requests expanded with redteam.Transform (role-play,
//     hypothetical and fiction framing, prefix injection, base64
//     obfuscation, payload splitting, multi-turn escalation); rows carry
//     general-safety. Benign-but-scary seeds pass through with noreject.
//   - decontamination against the evaluation prompts (dedup.DecontaminateAll:
//     13-gram, short-prompt and MinHash) and MinHash + LSH deduplication of
//     the rest; every dropped row is listed in dropped.jsonl with its reason.
//
// Resumability. Each generator stage appends one JSON line per finished item
// (accepted or rejected, with the reason) to work/STAGE.jsonl, written with a
// single append so that a kill leaves at most one torn last line, which the
// next run cuts off. A rerun skips the items already in the log. Every item's
// sampling seed is derived from the run seed and the item's key, so the
// order in which concurrent workers finish does not matter, and the final
// files (prompts.jsonl, seeds.jsonl, dropped.jsonl) are rebuilt from the logs
// in item order: a killed run, rerun, gives the files an uninterrupted one
// gives. Cancellation (Ctrl-C) never records the items in flight.
//
// Manifest. manifest.json holds the config hash (generator name, sampling,
// knobs, and the hashes of the catalog, seeds and evaluation prompts), and,
// once the run completes, the counts per stage and rejection reason, per CWE,
// per strategy and per transform, acceptance rates and the
// decontamination/dedup removals. A run refuses an output directory whose
// manifest is unreadable or was made with another config hash, or which has
// stage logs but no manifest, and then writes nothing.
//
// Generators: Endpoint (any OpenAI-compatible /chat/completions server,
// with retries and a per-attempt timeout) and ModelGenerator (a model in
// this process; concurrent calls are decoded as one batch by the rollout
// engine). Both pass each item's seed, so replies are reproducible where
// the backend is.
//
// Generator failures (malformed or empty output, refusals, timeouts, HTTP
// errors after the retries) are rejections counted per reason; they never
// stop the run.
package pipeline
