// Package serve is an OpenAI-compatible HTTP server over the rollout
// engine: /v1/chat/completions and /v1/completions (streamed as
// server-sent events or not), /v1/models and /health.
//
// Every request joins one continuous batch (generate.Engine.Serve), so
// concurrent clients share decode steps instead of taking turns, and a
// request's tokens do not depend on what else is in the batch: greedy
// answers are the ones `purpcode generate` and the in-process evaluation
// give. A client that disconnects has its sequences removed from the batch
// and their KV blocks freed at the next step.
//
// Errors are OpenAI-shaped JSON ({"error":{"message","type","param",
// "code"}}): 400 for malformed JSON and invalid or unsupported parameter
// values, 404 for an unknown path or model, 405 for a wrong method, 413
// for a body over the limit, 422 for a valid request this model cannot
// serve (prompt beyond the context window or the KV pool), 503 while
// shutting down.
//
// Log-probs are the model's raw log-softmax of each chosen token (what a
// trainer's forward pass computes, before temperature and top-p), for the
// tokens of the returned text (vLLM's default). Alternatives come from the
// same distribution at each step, drawn by the engine (not recomputed):
// chat "top_logprobs": N (0..20, with "logprobs": true) lists the N most
// likely tokens per position, most likely first, ties to the smaller id
// (empty lists when not asked for); completions "logprobs": N (0..5) maps
// the N most likely texts per position to their log-probs, plus the
// sampled token (up to N+1 entries, as OpenAI documents).
// Sampling seeds: a request with "seed" gets the same tokens every time;
// without one a fresh seed is drawn.
package serve
