package pipeline

import (
	"context"
	"errors"
	"net/http"
	"time"

	"purpcode/internal/chatapi"
	"purpcode/redteam"
)

// Generator writes one reply to a conversation. Implementations must be
// safe for concurrent use; seed should make the reply reproducible where
// the backend allows it.
type Generator interface {
	// Name identifies the generator in the manifest and the config hash:
	// the model, not where it is served, so a restarted server on another
	// port resumes the same run.
	Name() string
	Complete(ctx context.Context, msgs []redteam.Message, s Sampling) (string, error)
}

// Sampling are the per-request sampling settings.
type Sampling struct {
	Temperature float64 `json:"temperature"`
	MaxTokens   int     `json:"max_tokens"`
	Seed        uint64  `json:"seed"`
}

// ErrMalformedReply marks a reply that is not an OpenAI chat completion.
var ErrMalformedReply = chatapi.ErrMalformedReply

// StatusError is a non-200 HTTP reply.
type StatusError = chatapi.StatusError

// Endpoint is a Generator over an OpenAI-compatible /chat/completions
// server (`purpcode serve`, vLLM, a hosted API).
type Endpoint struct {
	// URL is the API base, e.g. http://127.0.0.1:8000/v1.
	URL   string
	Model string
	// Retries after the first attempt (network errors, timeouts, 429, 5xx,
	// malformed replies), with exponential back-off from Backoff.
	Retries int
	Backoff time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	Client  *http.Client
}

// Name implements Generator.
func (e *Endpoint) Name() string { return "endpoint:" + e.Model }

// Complete implements Generator.
func (e *Endpoint) Complete(ctx context.Context, msgs []redteam.Message, s Sampling) (string, error) {
	c := chatapi.Client{URL: e.URL, Retries: max(e.Retries, 0), Backoff: e.Backoff, Timeout: e.Timeout, HTTP: e.Client}
	return c.Complete(ctx, map[string]any{"model": e.Model, "messages": msgs,
		"temperature": s.Temperature, "max_tokens": s.MaxTokens, "seed": s.Seed})
}

// Rejection reasons recorded per item.
const (
	ReasonEmpty      = "empty"           // the generator replied with nothing
	ReasonRefusal    = "refusal"         // the generator declined
	ReasonMalformed  = "malformed"       // no usable code block / request in the reply
	ReasonNotFlagged = "not-flagged"     // rule2code: the analyzer did not confirm the weakness
	ReasonTimeout    = "timeout"         // the request timed out (after retries)
	ReasonHTTP       = "http-error"      // the server answered with an error status
	ReasonBadReply   = "malformed-reply" // the server's reply was not a chat completion
	ReasonError      = "error"           // any other transport failure
)

// failureReason maps a generator error to a rejection reason.
func failureReason(err error) string {
	var se *StatusError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return ReasonTimeout
	case errors.As(err, &se):
		return ReasonHTTP
	case errors.Is(err, ErrMalformedReply):
		return ReasonBadReply
	}
	return ReasonError
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
