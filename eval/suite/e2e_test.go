package suite

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"purpcode/analyzer"
	"purpcode/engine"
	"purpcode/generate"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/sandbox"
	"purpcode/serve"
	"purpcode/tokenizer"
)

func baseModel(t *testing.T) (string, *qwen2.Model, *tokenizer.Tokenizer, []int) {
	t.Helper()
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "base-model")
	m, err := qwen2.Load(dir, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eos, err := generate.StopTokens(dir, m.Cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, tok, eos
}

// serveBase starts `purpcode serve`'s server for the model on loopback.
func serveBase(t *testing.T, m *qwen2.Model, tok *tokenizer.Tokenizer, eos []int) string {
	t.Helper()
	srv, err := serve.New(serve.Config{Model: m, Tokenizer: tok, EOS: eos, Name: "base-model", MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return "http://" + ln.Addr().String() + "/v1"
}

// countingGen counts the requests that reach the generator.
type countingGen struct {
	Generator
	n atomic.Int64
}

func (c *countingGen) Generate(ctx context.Context, reqs []Request, done func(int, string, error)) error {
	c.n.Add(int64(len(reqs)))
	return c.Generator.Generate(ctx, reqs, done)
}

// TestServeAndInProcessAgree is must-hold 2 at a small limit: every suite
// answered greedily by the in-process engine and by `purpcode serve` over
// HTTP gives the same answers and the same metrics; a second run is served
// from the cache without generating.
func TestServeAndInProcessAgree(t *testing.T) {
	dir, m, tok, eos := baseModel(t)
	url := serveBase(t, m, tok, eos)
	fsys := DataFS("")
	var suites []*Suite
	hasSandbox := true
	if _, err := exec.LookPath("bwrap"); err != nil {
		if testref.Required() {
			t.Fatalf("CI=true requires the sandbox for the HumanEval+/MBPP+ suites: %v", err)
		}
		hasSandbox = false
	}
	for _, n := range Names() {
		if (n == "humaneval-plus" || n == "mbpp-plus") && !hasSandbox {
			t.Logf("%s skipped: no bubblewrap", n)
			continue
		}
		s, err := Load(fsys, n)
		if err != nil {
			t.Fatal(err)
		}
		suites = append(suites, s)
	}
	an, err := analyzer.New()
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	sc, err := NewSecureChecker(fsys, an)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Limit: 2, Sampling: Sampling{MaxTokens: 32}, Secure: sc, System: PaperSystemPrompt}
	if hasSandbox {
		if opts.Sandbox, err = sandbox.New(sandbox.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := NewEngine(m, tok, eos, dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	cg := &countingGen{Generator: eng}
	local, err := Run(ctx, cg, suites, Options{Limit: opts.Limit, Sampling: opts.Sampling, Secure: sc, System: opts.System, Sandbox: opts.Sandbox, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	ep := &Endpoint{URL: url, Model: "base-model", Concurrency: 4}
	if err := ep.Check(ctx); err != nil {
		t.Fatal(err)
	}
	remote, err := Run(ctx, ep, suites, opts)
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	for si, ls := range local.Suites {
		rs := remote.Suites[si]
		for i, lr := range ls.Results {
			rr := rs.Results[i]
			if lr.Answer != rr.Answer {
				t.Errorf("%s %s: in process %q, served %q", ls.Name, lr.ID, lr.Answer, rr.Answer)
			}
			if (lr.Error == "") != (rr.Error == "") {
				t.Errorf("%s %s: in process error %q, served error %q", ls.Name, lr.ID, lr.Error, rr.Error)
			}
			if lr.Error == "" {
				answered++
			}
		}
		lm, _ := json.Marshal(ls.Metrics)
		rm, _ := json.Marshal(rs.Metrics)
		if string(lm) != string(rm) {
			t.Errorf("%s: metrics in process %s, served %s", ls.Name, lm, rm)
		}
	}
	if answered < len(local.Suites) {
		t.Errorf("only %d items answered: the comparison is vacuous", answered)
	}

	// Cache: a second run regenerates only what failed, and scores the same.
	before := cg.n.Load()
	opts.Cache = cache
	second, err := Run(ctx, cg, suites, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again := cg.n.Load() - before; again != countErrors(local) {
		t.Errorf("second run generated %d answers; want only the %d that failed", again, countErrors(local))
	}
	for si, s := range second.Suites {
		for i, r := range s.Results {
			first := local.Suites[si].Results[i]
			if r.Error == "" && (!r.Cached || r.Answer != first.Answer) {
				t.Errorf("%s %s: cached %v, answer changed %v", s.Name, r.ID, r.Cached, r.Answer != first.Answer)
			}
		}
		lm, _ := json.Marshal(local.Suites[si].Metrics)
		sm, _ := json.Marshal(s.Metrics)
		if string(lm) != string(sm) {
			t.Errorf("%s: rescored metrics %s, first %s", s.Name, sm, lm)
		}
	}
}

func countErrors(r *Results) int64 {
	n := int64(0)
	for _, s := range r.Suites {
		n += int64(s.Errors)
	}
	return n
}

// TestEndpointFailures is must-hold 3: an endpoint that errors, times out
// or returns garbage is retried, then reported per item; the run goes on
// and the answers already cached stay.
func TestEndpointFailures(t *testing.T) {
	// flakyCalls counts only the flaky prompt's attempts, so that its
	// first fails and its retry succeeds whatever the other items' calls
	// interleave with it.
	var flakyCalls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []Message `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		p := req.Messages[len(req.Messages)-1].Content
		switch {
		case strings.Contains(p, "flaky") && flakyCalls.Add(1) == 1:
			http.Error(w, "overloaded", http.StatusInternalServerError)
		case strings.Contains(p, "garbage"):
			w.Write([]byte("<html>not json"))
		case strings.Contains(p, "slow"):
			<-r.Context().Done()
		case strings.Contains(p, "bad request"):
			http.Error(w, `{"error":{"message":"no"}}`, http.StatusBadRequest)
		default:
			json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "I'm sorry, I can't help with that."}}}})
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()
	items := []Item{}
	for _, p := range []string{"fine", "flaky", "garbage", "slow", "bad request", "fine again"} {
		items = append(items, Item{ID: p, Prompt: p, Scorer: ScorerRefusal, Label: "safe"})
	}
	s := &Suite{Name: "failures", Items: items}
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	ep := &Endpoint{URL: "http://" + ln.Addr().String() + "/v1", Model: "m", Concurrency: 3, Retries: 2,
		Backoff: time.Millisecond, Timeout: 200 * time.Millisecond}
	res, err := Run(context.Background(), ep, []*Suite{s}, Options{Sampling: Sampling{MaxTokens: 8}, Cache: cache})
	if err != nil {
		t.Fatalf("the run failed instead of reporting per item: %v", err)
	}
	want := map[string]string{"fine": "", "flaky": "", "garbage": "malformed reply", "slow": "deadline", "bad request": "status 400", "fine again": ""}
	for _, r := range res.Suites[0].Results {
		w := want[r.ID]
		if (w == "") != (r.Error == "") || !strings.Contains(r.Error, w) {
			t.Errorf("%s: error %q, want one containing %q", r.ID, r.Error, w)
		}
		if r.Error == "" && r.Class != FullRefusal {
			t.Errorf("%s: class %s", r.ID, r.Class)
		}
	}
	if got := res.Suites[0].Errors; got != 3 {
		t.Errorf("%d errors, want 3", got)
	}
	if cache.Len() != 3 {
		t.Errorf("%d answers cached, want the 3 that succeeded", cache.Len())
	}
	// Unreachable: one clear error before any work.
	dead := &Endpoint{URL: "http://127.0.0.1:1/v1", Model: "m"}
	if err := dead.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

func TestMalformedSuiteRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.jsonl")
	rows := `{"id":"a","prompt":"hi","scorer":"refusal","label":"safe"}
{"id":"b","prompt":"hi","scorer":"refusal","label":"maybe"}
`
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(DataFS(""), path)
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("error %v does not name %s:2", err, path)
	}
	for _, bad := range []string{`{"id":"a","prompt":"x","scorer":"evalplus"}`, `{"id":"a"`, `{"id":"a","prompt":"x","scorer":"nope"}`, `{"id":"a","prompt":"x","scorer":"refusal","label":"safe","typo":1}`} {
		if _, err := ReadJSONL(strings.NewReader("\n"+bad+"\n"), "f.jsonl"); err == nil || !strings.Contains(err.Error(), "f.jsonl:2:") {
			t.Errorf("%s: error %v does not name f.jsonl:2", bad, err)
		}
	}
	good := `{"id":"x","messages":[{"role":"user","content":"hi"}],"scorer":"evalplus","entry_point":"f","canonical":"def f(a): return a","base_inputs":[[1],[2]],"plus_inputs":[[{"__float__":"inf"}]],"compare":"set"}`
	items, err := ReadJSONL(strings.NewReader(good), "g.jsonl")
	if err != nil || len(items) != 1 {
		t.Fatalf("valid row refused: %v", err)
	}
}
