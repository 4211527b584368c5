// Package distill builds PurpCode's rule-learning SFT set by context
// distillation.
//
// For every prompt row the model is shown a system prompt holding the
// safety policy and the rule texts relevant to the row (the caller supplies
// them through Options.RuleContext, so that this package stays below the
// red-team catalog in the layering), samples K answers prefilled with
// "## Analysis\n", and each answer is verified with the row's own oracle
// (reward = format gate x oracle score). Answers with a reward of at least
// Options.MinReward are kept; the best one (highest reward, then fewest
// tokens, then lowest sample index) becomes an SFT row whose messages are
// the row's original conversation, without the rule context, followed by
// the answer: the model learns to behave as if the rules were in its
// context. Prompts whose share of verified samples reaches
// Options.EasyFrac are listed as easy, for RL to skip.
//
// Run writes to Options.Out:
//   - sft.jsonl: {"messages": [...], "id", "oracle", "reward", "sample",
//     "verified", "cwe"?}; train/data reads the messages and ignores the
//     provenance keys;
//   - easy_ids.txt: one prompt id per line (the format of GRPO's skip_ids);
//   - summary.json and summary.txt: counts per oracle and per CWE;
//   - samples.jsonl (Options.WriteSamples): every sample with its score.
//
// The same rows, model, options and seed give byte-identical files: every
// prompt's samples are drawn from a random stream that depends only on the
// seed, the row id and the sample index.
package distill
