package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"purpcode/internal/chatapi"
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

func (ep *Endpoint) complete(ctx context.Context, r Request) (string, error) {
	body := map[string]any{"model": ep.Model, "messages": r.Messages, "max_tokens": r.Sampling.MaxTokens,
		"temperature": r.Sampling.Temperature, "seed": r.Sampling.Seed}
	if r.Sampling.TopP > 0 {
		body["top_p"] = r.Sampling.TopP
	}
	c := chatapi.Client{URL: ep.URL, Retries: ep.Retries, Backoff: ep.Backoff, Timeout: ep.Timeout, HTTP: ep.Client}
	return c.Complete(ctx, body)
}
