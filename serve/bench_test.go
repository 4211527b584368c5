package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkServe is a load generator against the server over loopback:
// `streams` clients each send chat requests back to back (32 new tokens,
// ignore_eos so every answer has the same length, sampled with distinct
// seeds). One op is one request. It reports requests/s, tokens/s and
// p50/p99 request latency.
//
//	go test ./serve -run '^$' -bench Serve -benchtime 64x
func BenchmarkServe(b *testing.B) {
	const newTokens = 32
	for _, streams := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			f := startServer(b, func(c *Config) { c.MaxBatch = 32 })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams}}
			var mu sync.Mutex
			var lat []time.Duration
			tokens := 0
			next := 0
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						mu.Lock()
						i := next
						next++
						mu.Unlock()
						if i >= b.N {
							return
						}
						body, _ := json.Marshal(chatBody(prompts[i%len(prompts)], map[string]any{
							"max_tokens": newTokens, "ignore_eos": true, "temperature": 1, "seed": i,
						}))
						t0 := time.Now()
						resp, err := client.Post(f.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						raw, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						d := time.Since(t0)
						if err != nil || resp.StatusCode != 200 {
							b.Errorf("status %d, %v: %s", resp.StatusCode, err, raw)
							return
						}
						var r chatResponse
						if err := json.Unmarshal(raw, &r); err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						tokens += r.Usage.CompletionTokens
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(len(lat))/elapsed, "req/s")
			b.ReportMetric(float64(tokens)/elapsed, "tok/s")
			b.ReportMetric(pct(0.50), "p50_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
		})
	}
}
