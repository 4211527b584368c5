// Package chatapi posts requests to an OpenAI-compatible /chat/completions
// endpoint (`purpcode serve`, vLLM, SGLang, a hosted API) and returns the
// first choice's message, with per-attempt timeouts and retries with
// back-off for what may succeed on another attempt (network errors,
// timeouts, 408, 429, 5xx). It is the one client behind the evaluation
// suites' endpoints and the red-teaming generators.
package chatapi
