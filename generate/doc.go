// Package generate is the rollout engine: it samples completions of token
// prompts from a qwen2 model in process, with the log-prob of every sampled
// token (and, when asked, the most likely alternatives at each step), for
// RL rollouts, rule-learning data, evaluation and serving.
//
// Sequences live in a paged KV cache (qwen2.KVCache). Each step batches the
// decode tokens of every running sequence with chunks of prompts being
// prefilled, so the projections run as one GEMM; sequences finish
// independently and waiting ones join as soon as the batch and the cache
// have room (continuous batching). The n samples of one prompt share its
// prefill: the prompt is prefilled once and forked in the cache.
//
// Results never depend on batch composition or on the cache size: every
// sample has its own random stream seeded from (request seed, request id,
// sample index), and its logits do not depend on which other sequences share
// the step.
//
// Under tensor parallelism every rank of a model replica runs its own
// engine, with the same options and requests, on its shard
// (qwen2.Model.Shard), in lockstep: each decode step is a collective, and
// the shard decoder all-gathers the rows of logits it returns, so every
// rank samples from the same bits. The scheduler's decisions depend only on
// the requests, the options and the tokens drawn; each sample's random
// stream only on its seed; the parallel draw does not depend on which
// goroutine draws what. So every rank draws the same tokens without
// sending them: a broadcast of the tokens from rank 0 would cost a
// collective per step and hide, rather than catch, a rank that diverged.
// The one input that differs by rank is when its context ends: Options.Agree
// makes every rank stop at the same step.
//
// Sampling follows the usual order: temperature, then top-k, then top-p
// (nucleus) on the renormalised top-k distribution, with candidates ordered
// by probability and ties broken by the smaller token id. Each step of it is
// a separate function over a float64 probability vector, so a device kernel
// can mirror them one by one.
package generate
