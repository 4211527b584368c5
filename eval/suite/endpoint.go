package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"purpcode/internal/retry"
)

// Endpoint is an OpenAI-compatible chat completions server (vLLM, SGLang,
// TGI, llama.cpp's server, `purpcode serve`).
type Endpoint struct {
	// URL is the API base, e.g. http://127.0.0.1:8000/v1.
	URL   string
	Model string
	// Concurrency is the number of requests in flight (default 8).
	Concurrency int
	// Retries is how many times a failed request is retried (default 4),
	// with exponential back-off from Backoff (default 500 ms).
	Retries int
	Backoff time.Duration
	// Timeout bounds one HTTP attempt (default 10 min).
	Timeout time.Duration
	// Client is the HTTP client (default: a new one).
	Client *http.Client
}

func (ep *Endpoint) defaults() {
	if ep.Concurrency <= 0 {
		ep.Concurrency = 8
	}
	if ep.Retries < 0 {
		ep.Retries = 0
	} else if ep.Retries == 0 {
		ep.Retries = 4
	}
	if ep.Backoff <= 0 {
		ep.Backoff = 500 * time.Millisecond
	}
	if ep.Timeout <= 0 {
		ep.Timeout = 10 * time.Minute
	}
	if ep.Client == nil {
		ep.Client = &http.Client{}
	}
}

// Fingerprint implements Generator: the server and model name (the
// server's weights are not visible from here).
func (ep *Endpoint) Fingerprint() string {
	return "endpoint:" + strings.TrimRight(ep.URL, "/") + "#" + ep.Model
}

// Check asks the server for its models, so that an unreachable server or a
// wrong model name is one clear error before any work.
func (ep *Endpoint) Check(ctx context.Context) error {
	ep.defaults()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(ep.URL, "/")+"/models", nil)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.URL, err)
	}
	resp, err := ep.Client.Do(req)
	if err != nil {
		return fmt.Errorf("endpoint %s is unreachable: %w", ep.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("endpoint %s: GET /models: status %d: %s", ep.URL, resp.StatusCode, clip(string(body), 300))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("endpoint %s: GET /models is not an OpenAI model list: %w", ep.URL, err)
	}
	var ids []string
	for _, m := range list.Data {
		if m.ID == ep.Model {
			return nil
		}
		ids = append(ids, m.ID)
	}
	return fmt.Errorf("endpoint %s does not serve model %q (it serves %s)", ep.URL, ep.Model, strings.Join(ids, ", "))
}

// Generate implements Generator: Concurrency workers, each request
// retried on network errors, timeouts, 429, 5xx and malformed replies.
func (ep *Endpoint) Generate(ctx context.Context, reqs []Request, done func(int, string, error)) error {
	ep.defaults()
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range min(ep.Concurrency, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(reqs) {
					return
				}
				text, err := ep.complete(ctx, reqs[i])
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				done(i, text, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// errPermanent marks a reply that retrying will not change (4xx).
type errPermanent struct{ error }

func (ep *Endpoint) complete(ctx context.Context, r Request) (string, error) {
	body := map[string]any{"model": ep.Model, "messages": r.Messages, "max_tokens": r.Sampling.MaxTokens,
		"temperature": r.Sampling.Temperature, "seed": r.Sampling.Seed}
	if r.Sampling.TopP > 0 {
		body["top_p"] = r.Sampling.TopP
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("encode request: %w", err)
	}
	permanent := func(err error) bool {
		var perm errPermanent
		return errors.As(err, &perm)
	}
	text, err := retry.Do(ctx, ep.Retries, ep.Backoff, permanent, func(ctx context.Context) (string, error) { return ep.once(ctx, payload) })
	if err != nil {
		if err == ctx.Err() {
			return "", err
		}
		return "", fmt.Errorf("endpoint %s: %w", ep.URL, err)
	}
	return text, nil
}

func (ep *Endpoint) once(ctx context.Context, payload []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(ep.URL, "/")+"/chat/completions", bytes.NewReader(payload))
	if err != nil {
		return "", errPermanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ep.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("status %d: %s", resp.StatusCode, clip(string(raw), 300))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			return "", errPermanent{err}
		}
		return "", err
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].Message.Content == nil {
		return "", fmt.Errorf("malformed reply (no choices[0].message.content): %s", clip(string(raw), 300))
	}
	return *out.Choices[0].Message.Content, nil
}
