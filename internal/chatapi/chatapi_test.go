package chatapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetriesWhatMaySucceed: 5xx and 429 are retried, 4xx and a bad URL
// are not, a malformed reply is reported as such, and a hanging server
// ends at the per-attempt timeout.
func TestRetriesWhatMaySucceed(t *testing.T) {
	var calls atomic.Int64
	var status atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch st := int(status.Load()); {
		case st == -1:
			w.Write([]byte("<html>"))
		case st == -2:
			// Longer than the client's per-attempt timeout; bounded so
			// that the server's Close never waits on it for long.
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		case st != 0 && n == 1:
			http.Error(w, "no", st)
		default:
			w.Write([]byte(`{"choices":[{"message":{"content":"ok"}}]}`))
		}
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, Retries: 2, Backoff: time.Millisecond, Timeout: 100 * time.Millisecond}
	for _, tc := range []struct {
		status    int
		wantCalls int64
		wantErr   string
	}{
		{0, 1, ""}, {500, 2, ""}, {429, 2, ""}, {400, 1, "status 400"}, {-1, 3, "malformed reply"}, {-2, 3, "deadline"},
	} {
		calls.Store(0)
		status.Store(int64(tc.status))
		text, err := c.Complete(context.Background(), map[string]any{"model": "m"})
		if calls.Load() != tc.wantCalls || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) || (err == nil && text != "ok") {
			t.Errorf("status %d: %d calls, %q, %v; want %d calls and an error containing %q", tc.status, calls.Load(), text, err, tc.wantCalls, tc.wantErr)
		}
	}
	var se *StatusError
	status.Store(404)
	calls.Store(0)
	if _, err := c.Complete(context.Background(), nil); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("404: %v, want a *StatusError", err)
	}
	bad := &Client{URL: "http://\x7f", Retries: 3, Backoff: time.Millisecond}
	if _, err := bad.Complete(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "build request") {
		t.Errorf("bad URL: %v", err)
	}
}
