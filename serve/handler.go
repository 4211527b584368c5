package serve

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"purpcode/generate"
)

// event is one engine callback for one prompt of a job.
type event struct {
	prompt int
	u      generate.Update
	done   bool
	err    error
}

// inbox carries engine callbacks (which must not block) to the handler.
type inbox struct {
	mu     sync.Mutex
	ev     []event
	signal chan struct{}
}

func (b *inbox) put(e event) {
	b.mu.Lock()
	b.ev = append(b.ev, e)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *inbox) take() []event {
	b.mu.Lock()
	defer b.mu.Unlock()
	ev := b.ev
	b.ev = nil
	return ev
}

// choice is one sample's progress as the client sees it.
type choice struct {
	index    int
	text     *textStream
	logp     []float32                 // raw log-prob per token
	top      [][]generate.TokenLogProb // most likely alternatives per token
	finish   string
	shown    int // bytes of text sent (streaming)
	shownTok int // tokens whose log-probs were sent (streaming)
	finSent  bool
}

// reply is a job in flight.
type reply struct {
	s       *Server
	j       *job
	id      string
	created int64
	choices []*choice
	pending int // prompts not done
	started bool
}

func newID(prefix string) string {
	var b [12]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return prefix + hex.EncodeToString(b[:])
}

// serveJob submits the job's prompts and answers as the engine reports.
func (s *Server) serveJob(w http.ResponseWriter, r *http.Request, j *job) {
	ctx := r.Context()
	box := &inbox{signal: make(chan struct{}, 1)}
	rp := &reply{s: s, j: j, created: time.Now().Unix(), pending: len(j.prompts)}
	rp.id = newID("cmpl-")
	if j.chat {
		rp.id = newID("chatcmpl-")
	}
	for p := range j.prompts {
		for i := 0; i < j.n; i++ {
			rp.choices = append(rp.choices, &choice{index: p*j.n + i, text: newTextStream(s.cfg.Tokenizer, j.stops)})
		}
	}
	params := j.params
	if !j.ignoreEOS {
		params.StopIDs = s.cfg.EOS
	}
	for p, prompt := range j.prompts {
		lr := &generate.LiveRequest{
			// A fixed id: the seed alone picks the random stream, so a
			// request with a seed is reproducible.
			Request:  generate.Request{ID: "serve", Prompt: prompt, N: j.n, Params: params, Seed: j.seed},
			Ctx:      ctx,
			Progress: func(u generate.Update) { s.countTokens(len(u.Tokens)); box.put(event{prompt: p, u: u}) },
			Done: func(err error) {
				s.leave(err != nil && ctx.Err() != nil)
				box.put(event{prompt: p, done: true, err: err})
			},
		}
		s.enter()
		select {
		case s.submit <- lr:
		case <-s.closed:
			s.leave(false)
			// Prompts already submitted are failed by the stopping loop.
			writeError(w, newError(http.StatusServiceUnavailable, "server_error", "", "unavailable", "the server is shutting down"))
			return
		case <-ctx.Done():
			s.leave(true)
			return
		}
	}
	for rp.pending > 0 {
		select {
		case <-box.signal:
		case <-ctx.Done():
			// The engine drops the sequences at its next step.
			return
		}
		for _, e := range box.take() {
			if err := rp.apply(e); err != nil {
				if !rp.started {
					writeError(w, err)
				} else {
					rp.streamError(w, err)
				}
				return
			}
		}
		if j.stream && rp.pending > 0 {
			if err := rp.streamChunks(w, false); err != nil {
				return
			}
		}
	}
	if j.stream {
		// A write error means the client left; nothing more to do.
		_ = rp.streamChunks(w, true)
		return
	}
	writeJSON(w, http.StatusOK, rp.final())
}

func (s *Server) enter() {
	s.mu.Lock()
	s.stats.Requests++
	s.stats.InFlight++
	s.mu.Unlock()
}

func (s *Server) leave(cancelled bool) {
	s.mu.Lock()
	s.stats.InFlight--
	if cancelled {
		s.stats.Cancelled++
	}
	if s.stats.InFlight == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

func (s *Server) countTokens(n int) {
	s.mu.Lock()
	s.stats.GeneratedTokens += int64(n)
	s.mu.Unlock()
}

// apply records one event; an error ends the reply.
func (rp *reply) apply(e event) error {
	if e.done {
		rp.pending--
		switch {
		case e.err == nil:
			return nil
		case errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded):
			select {
			case <-rp.s.closed:
				return newError(http.StatusServiceUnavailable, "server_error", "", "unavailable", "the server is shutting down")
			default:
				return e.err
			}
		}
		select {
		case <-rp.s.closed:
			return fmt.Errorf("engine stopped: %w", e.err)
		default:
		}
		// Parameters were validated before submission, so the engine
		// refuses a request only when it cannot hold it.
		return tooLong("", "%v", e.err)
	}
	c := rp.choices[e.prompt*rp.j.n+e.u.Index]
	c.logp = append(c.logp, e.u.RawLogProbs...)
	c.top = append(c.top, e.u.TopLogProbs...)
	if e.u.FinishReason != "" {
		c.finish = e.u.FinishReason
	}
	c.text.push(e.u.Tokens, c.finish != "")
	return nil
}

func (rp *reply) usage() map[string]int {
	prompt, completion := 0, 0
	for _, p := range rp.j.prompts {
		prompt += len(p)
	}
	for _, c := range rp.choices {
		completion += len(c.text.ids)
	}
	return map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
}

// tokenLogprob is one shown token's log-prob (and, when asked for, its
// most likely alternatives) in the chat shape; offset is the token's start
// in the text, for the completions shape.
type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float32      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
	offset      int
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// tokenText is a token's text and its UTF-8 bytes, as OpenAI lists them.
func (rp *reply) tokenText(id int) (string, []int) {
	s := rp.s.cfg.Tokenizer.Decode([]int{id}, false)
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return s, b
}

// tokenLogprobs lists the log-probs of tokens from..to of c that show in
// the text (special tokens such as EOS do not).
func (rp *reply) tokenLogprobs(c *choice, from, to int) []tokenLogprob {
	tok := rp.s.cfg.Tokenizer
	out := []tokenLogprob{}
	for k := from; k < to; k++ {
		id := c.text.ids[k]
		if tok.IsSpecial(id) {
			continue
		}
		s, b := rp.tokenText(id)
		off := 0
		if k > 0 {
			off = max(c.text.ends[k-1], 0)
		}
		top := []topLogprob{}
		if k < len(c.top) {
			for _, alt := range c.top[k] {
				ts, tb := rp.tokenText(alt.ID)
				top = append(top, topLogprob{Token: ts, Logprob: alt.LogProb, Bytes: tb})
			}
		}
		out = append(out, tokenLogprob{Token: s, Logprob: c.logp[k], Bytes: b, TopLogprobs: top, offset: off})
	}
	return out
}

// logprobsField renders log-probs in the endpoint's shape. The completions
// shape maps each position's alternatives by text and always includes the
// sampled token (so up to logprobs+1 entries, as OpenAI documents).
func (rp *reply) logprobsField(c *choice, from, to int) any {
	if !rp.j.logprobs {
		return nil
	}
	lp := rp.tokenLogprobs(c, from, to)
	if rp.j.chat {
		return map[string]any{"content": lp}
	}
	tokens := make([]string, len(lp))
	values := make([]float32, len(lp))
	offsets := make([]int, len(lp))
	tops := make([]map[string]float32, len(lp))
	for i, t := range lp {
		tokens[i], values[i], offsets[i] = t.Token, t.Logprob, t.offset
		m := map[string]float32{}
		for _, alt := range t.TopLogprobs {
			// Two ids with the same text (e.g. invalid UTF-8 pieces): the
			// more likely one, listed first, is kept.
			if _, dup := m[alt.Token]; !dup {
				m[alt.Token] = alt.Logprob
			}
		}
		if _, ok := m[t.Token]; !ok {
			m[t.Token] = t.Logprob
		}
		tops[i] = m
	}
	return map[string]any{"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
}

func (rp *reply) final() map[string]any {
	choices := make([]map[string]any, len(rp.choices))
	for i, c := range rp.choices {
		text := c.text.answer()
		m := map[string]any{"index": c.index, "finish_reason": c.finish,
			"logprobs": rp.logprobsField(c, 0, c.text.tokensUpTo(len(text)))}
		if rp.j.chat {
			m["message"] = map[string]any{"role": "assistant", "content": text}
		} else {
			m["text"] = text
		}
		choices[i] = m
	}
	object := "text_completion"
	if rp.j.chat {
		object = "chat.completion"
	}
	return map[string]any{"id": rp.id, "object": object, "created": rp.created, "model": rp.s.cfg.Name,
		"choices": choices, "usage": rp.usage()}
}

// streamChunks sends what became visible since the last call; with end,
// the finish chunks, the usage chunk when asked for, and [DONE].
func (rp *reply) streamChunks(w http.ResponseWriter, end bool) error {
	if !rp.started {
		rp.started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if rp.j.chat {
			for _, c := range rp.choices {
				if err := rp.send(w, rp.chunk(c, map[string]any{"role": "assistant", "content": ""}, nil, nil)); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range rp.choices {
		done := c.finish != ""
		vis := c.text.visible(done)
		if vis <= c.shown && (!done || c.finSent) {
			continue
		}
		upTo := c.text.tokensUpTo(vis)
		var fin any
		if done {
			fin = c.finish
			c.finSent = true
		}
		text := c.text.text.String()[c.shown:max(vis, c.shown)]
		var delta any = text
		if rp.j.chat {
			d := map[string]any{}
			if text != "" {
				d["content"] = text
			}
			delta = d
		}
		lp := rp.logprobsField(c, c.shownTok, upTo)
		c.shown, c.shownTok = max(vis, c.shown), upTo
		if err := rp.send(w, rp.chunk(c, delta, lp, fin)); err != nil {
			return err
		}
	}
	if !end {
		return nil
	}
	if rp.j.includeUsage {
		m := rp.chunkBase()
		m["choices"] = []any{}
		m["usage"] = rp.usage()
		if err := rp.send(w, m); err != nil {
			return err
		}
	}
	return rp.sendRaw(w, "[DONE]")
}

func (rp *reply) chunkBase() map[string]any {
	object := "text_completion"
	if rp.j.chat {
		object = "chat.completion.chunk"
	}
	return map[string]any{"id": rp.id, "object": object, "created": rp.created, "model": rp.s.cfg.Name}
}

func (rp *reply) chunk(c *choice, delta, logprobs, finish any) map[string]any {
	ch := map[string]any{"index": c.index, "logprobs": logprobs, "finish_reason": finish}
	if rp.j.chat {
		ch["delta"] = delta
	} else {
		ch["text"] = delta
	}
	m := rp.chunkBase()
	m["choices"] = []any{ch}
	return m
}

func (rp *reply) send(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	return rp.sendRaw(w, string(b))
}

func (rp *reply) sendRaw(w http.ResponseWriter, data string) error {
	if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

// streamError reports an error after the stream began, as vLLM does: an
// error event, then [DONE].
func (rp *reply) streamError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = newError(http.StatusInternalServerError, "server_error", "", "internal_error", "%v", err)
	}
	if rp.send(w, map[string]*apiError{"error": ae}) == nil {
		_ = rp.sendRaw(w, "[DONE]")
	}
}
