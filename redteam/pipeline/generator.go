package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"purpcode/internal/retry"
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
var ErrMalformedReply = errors.New("malformed reply")

// StatusError is a non-200 HTTP reply.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Code, e.Body) }

// retryable reports whether the reply might differ on another attempt.
func (e *StatusError) retryable() bool {
	return e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout || e.Code >= 500
}

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
	payload, err := json.Marshal(map[string]any{"model": e.Model, "messages": msgs,
		"temperature": s.Temperature, "max_tokens": s.MaxTokens, "seed": s.Seed})
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	permanent := func(err error) bool {
		var se *StatusError
		return errors.As(err, &se) && !se.retryable()
	}
	text, err := retry.Do(ctx, e.Retries, e.Backoff, permanent, func(ctx context.Context) (string, error) { return e.post(ctx, payload) })
	if err != nil {
		if err == ctx.Err() {
			return "", err
		}
		return "", fmt.Errorf("endpoint %s: %w", e.URL, err)
	}
	return text, nil
}

func (e *Endpoint) post(ctx context.Context, payload []byte) (string, error) {
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(e.URL, "/")+"/chat/completions", bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := e.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{Code: resp.StatusCode, Body: clip(string(raw), 200)}
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].Message.Content == nil {
		return "", fmt.Errorf("%w: %s", ErrMalformedReply, clip(string(raw), 200))
	}
	return *out.Choices[0].Message.Content, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
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
