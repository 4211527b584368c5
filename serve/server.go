package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// Config describes the served model and the server's bounds.
type Config struct {
	Model     *qwen2.Model
	Tokenizer *tokenizer.Tokenizer
	// EOS ends every sample unless the request sets ignore_eos (see
	// generate.StopTokens).
	EOS []int
	// Name is the model id clients pass as "model" and /v1/models lists.
	Name string
	// MaxBatch and KVBlocks size the engine (generate.Options).
	MaxBatch int
	KVBlocks int
	// MaxBodyBytes bounds a request body (default 4 MiB).
	MaxBodyBytes int64
	// MaxN bounds "n" (default 16).
	MaxN int
}

// Stats counts the server's work since it started.
type Stats struct {
	Requests        int64 // accepted generation requests (HTTP)
	Cancelled       int64 // requests whose client left before the end
	InFlight        int   // requests in the engine now
	GeneratedTokens int64 // tokens drawn, cancelled requests included
}

// Server answers the OpenAI API from one engine. Create it with New;
// Close stops it.
type Server struct {
	cfg     Config
	lim     limits
	eng     *generate.Engine
	created int64
	submit  chan *generate.LiveRequest
	stop    context.CancelFunc
	loopErr chan error
	closed  chan struct{}

	mu    sync.Mutex
	idle  *sync.Cond
	stats Stats
}

// New starts the engine loop for cfg's model.
func New(cfg Config) (*Server, error) {
	if cfg.Model == nil || cfg.Tokenizer == nil {
		return nil, errors.New("serve: config needs a model and a tokenizer")
	}
	if cfg.Name == "" {
		return nil, errors.New("serve: config needs a model name")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxN == 0 {
		cfg.MaxN = 16
	}
	tok := cfg.Tokenizer
	// EOS is passed per request as stop ids, so ignore_eos can drop it.
	eng, err := generate.New(cfg.Model, generate.Options{
		MaxBatch: cfg.MaxBatch, KVBlocks: cfg.KVBlocks,
		Decode: func(ids []int) string { return tok.Decode(ids, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, eng: eng, created: time.Now().Unix(),
		lim: limits{
			model: cfg.Name, maxN: cfg.MaxN,
			maxPositions: cfg.Model.Cfg.MaxPositions, vocab: cfg.Model.Cfg.Vocab,
		},
		submit: make(chan *generate.LiveRequest), stop: stop,
		loopErr: make(chan error, 1), closed: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	go func() {
		err := eng.Serve(ctx, s.submit)
		close(s.closed)
		s.loopErr <- err
	}()
	return s, nil
}

// Close stops the engine loop (requests in flight get 503-style errors)
// and releases the engine. Stop the HTTP server first to drain clients.
func (s *Server) Close() error {
	s.stop()
	err := <-s.loopErr
	s.eng.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// WaitIdle blocks until no request is in the engine, or ctx ends. Tests
// use it to see a disconnected client's sequence leave the batch.
func (s *Server) WaitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.stats.InFlight > 0 && ctx.Err() == nil {
		s.idle.Wait()
	}
	return ctx.Err()
}

// KVInUse is the number of KV blocks held by sequences now.
func (s *Server) KVInUse() int { return s.eng.KVBlocks() - s.eng.FreeKVBlocks() }

// Handler routes the API. Unknown paths and wrong methods get JSON errors.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", s.post(s.chat))
	mux.HandleFunc("/v1/completions", s.post(s.completions))
	mux.HandleFunc("/v1/models", s.get(s.models))
	mux.HandleFunc("/v1/models/{id}", s.get(s.model))
	mux.HandleFunc("/health", s.get(s.health))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, "invalid_request_error", "", "unknown_url",
			"unknown URL: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, newError(http.StatusMethodNotAllowed, "invalid_request_error", "", "method_not_allowed",
				"%s is not allowed on %s; use POST", r.Method, r.URL.Path))
			return
		}
		h(w, r)
	}
}

func (s *Server) get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]*apiError{"error": newError(http.StatusMethodNotAllowed,
				"invalid_request_error", "", "method_not_allowed", "%s is not allowed on %s; use GET", r.Method, r.URL.Path)})
			return
		}
		h(w, r)
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.closed:
		writeError(w, newError(http.StatusServiceUnavailable, "server_error", "", "unavailable", "the engine has stopped"))
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

type modelCard struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	MaxModelLen int    `json:"max_model_len"`
}

func (s *Server) card() modelCard {
	return modelCard{ID: s.cfg.Name, Object: "model", Created: s.created, OwnedBy: "purpcode", MaxModelLen: s.lim.maxPositions}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []modelCard{s.card()}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.cfg.Name {
		writeError(w, newError(http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			"the model %q does not exist", id))
		return
	}
	writeJSON(w, http.StatusOK, s.card())
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	serveRequest[chatRequest](s, w, r)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	serveRequest[completionRequest](s, w, r)
}

// serveRequest decodes a request body of type T, turns it into a job and
// serves it: the path every generation endpoint shares.
func serveRequest[T any, PT interface {
	*T
	job(limits, *tokenizer.Tokenizer) (*job, error)
}](s *Server, w http.ResponseWriter, r *http.Request) {
	req := PT(new(T))
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, req); err != nil {
		writeError(w, err)
		return
	}
	j, err := req.job(s.lim, s.cfg.Tokenizer)
	if err != nil {
		writeError(w, err)
		return
	}
	s.serveJob(w, r, j)
}

// freshSeed draws a seed for a request that gave none.
func freshSeed() uint64 { return rand.Uint64() }
