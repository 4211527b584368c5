package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"purpcode/redteam"
)

// TestEndpointFailures drives Endpoint against a server that misbehaves in
// each way a real one can and checks the reason each failure maps to, and
// that transient failures are retried.
func TestEndpointFailures(t *testing.T) {
	var mu sync.Mutex
	attempts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string            `json:"model"`
			Messages []redteam.Message `json:"messages"`
			Seed     uint64            `json:"seed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "m" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mode := req.Messages[0].Content
		mu.Lock()
		attempts[mode]++
		n := attempts[mode]
		mu.Unlock()
		switch mode {
		case "ok":
			fmt.Fprintf(w, `{"choices":[{"message":{"role":"assistant","content":"seed %d"}}]}`, req.Seed)
		case "flaky":
			if n == 1 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, `{"choices":[{"message":{"content":"recovered"}}]}`)
		case "down":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "forbidden":
			http.Error(w, "no", http.StatusForbidden)
		case "garbage":
			fmt.Fprint(w, `{"choices":[]}`)
		case "hang":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	ep := &Endpoint{URL: srv.URL + "/v1/", Model: "m", Retries: 2, Backoff: time.Millisecond, Timeout: 100 * time.Millisecond}
	cases := []struct {
		mode, text, reason string
		attempts           int
	}{
		{"ok", "seed 42", "", 1},
		{"flaky", "recovered", "", 2},
		{"down", "", ReasonHTTP, 3},
		{"forbidden", "", ReasonHTTP, 1},
		{"garbage", "", ReasonBadReply, 3},
		{"hang", "", ReasonTimeout, 3},
	}
	for _, c := range cases {
		text, err := ep.Complete(context.Background(), []redteam.Message{{Role: "user", Content: c.mode}}, Sampling{Seed: 42, MaxTokens: 8})
		reason := ""
		if err != nil {
			reason = failureReason(err)
		}
		mu.Lock()
		n := attempts[c.mode]
		mu.Unlock()
		if text != c.text || reason != c.reason || n != c.attempts {
			t.Errorf("%s: text %q, reason %q (%v) after %d attempts; want %q, %q after %d", c.mode, text, reason, err, n, c.text, c.reason, c.attempts)
		}
	}
	if ep.Name() != "endpoint:m" {
		t.Errorf("Name %q: the config hash must not depend on the URL", ep.Name())
	}
}
