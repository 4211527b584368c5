package chatapi

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
)

// ErrMalformedReply marks a reply that is not a chat completion.
var ErrMalformedReply = errors.New("malformed reply (no choices[0].message.content)")

// StatusError is a non-200 reply.
type StatusError struct {
	Code int
	Body string // clipped
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Code, e.Body) }

// Retryable reports whether another attempt might get a different answer.
func (e *StatusError) Retryable() bool {
	return e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout || e.Code >= 500
}

// Client is one endpoint.
type Client struct {
	// URL is the API base, e.g. http://127.0.0.1:8000/v1.
	URL string
	// Retries after the first attempt, with exponential back-off from
	// Backoff.
	Retries int
	Backoff time.Duration
	// Timeout bounds one attempt (0: none).
	Timeout time.Duration
	// HTTP is the client (nil: http.DefaultClient).
	HTTP *http.Client
}

// buildError marks a request that could not be built (a bad URL): no
// attempt can succeed.
type buildError struct{ error }

// Complete posts body (a chat completions request) and returns the first
// choice's content. Errors are wrapped with the endpoint's URL; a context
// that ends while waiting to retry returns its own error.
func (c *Client) Complete(ctx context.Context, body any) (string, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	permanent := func(err error) bool {
		var se *StatusError
		var be buildError
		return errors.As(err, &be) || errors.As(err, &se) && !se.Retryable()
	}
	text, err := retry.Do(ctx, c.Retries, c.Backoff, permanent, func(ctx context.Context) (string, error) { return c.post(ctx, payload) })
	if err != nil {
		if err == ctx.Err() {
			return "", err
		}
		return "", fmt.Errorf("endpoint %s: %w", c.URL, err)
	}
	return text, nil
}

func (c *Client) post(ctx context.Context, payload []byte) (string, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/chat/completions", bytes.NewReader(payload))
	if err != nil {
		return "", buildError{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{Code: resp.StatusCode, Body: clip(string(raw), 300)}
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].Message.Content == nil {
		return "", fmt.Errorf("%w: %s", ErrMalformedReply, clip(string(raw), 300))
	}
	return *out.Choices[0].Message.Content, nil
}

// clip shortens s to n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
