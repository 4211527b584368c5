package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"purpcode/generate"
	"purpcode/tokenizer"
)

// sampling holds the parameters both endpoints share (OpenAI's names, plus
// vLLM's top_k and ignore_eos, which load generators and evaluation
// harnesses rely on).
type sampling struct {
	Model            string          `json:"model"`
	N                *int            `json:"n"`
	Temperature      *float64        `json:"temperature"`
	TopP             *float64        `json:"top_p"`
	TopK             *int            `json:"top_k"`
	MaxTokens        *int            `json:"max_tokens"`
	Stop             json.RawMessage `json:"stop"`
	Seed             *int64          `json:"seed"`
	Stream           bool            `json:"stream"`
	StreamOptions    *streamOptions  `json:"stream_options"`
	IgnoreEOS        bool            `json:"ignore_eos"`
	PresencePenalty  *float64        `json:"presence_penalty"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	User             string          `json:"user"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	sampling
	Messages            []chatMessage   `json:"messages"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Tools               json.RawMessage `json:"tools"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type completionRequest struct {
	sampling
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int            `json:"logprobs"`
	Echo     bool            `json:"echo"`
	Suffix   *string         `json:"suffix"`
	BestOf   *int            `json:"best_of"`
}

// job is a validated request: token prompts and how to sample them.
type job struct {
	chat         bool
	prompts      [][]int
	n            int
	params       generate.SamplingParams
	seed         uint64
	stream       bool
	includeUsage bool
	logprobs     bool
	topLogprobs  int // alternatives per token (chat top_logprobs, completions logprobs)
	stops        []string
	ignoreEOS    bool
}

// decodeBody reads a JSON body into v: 413 over the limit, 400 when it is
// not JSON or a field has the wrong JSON type.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return newError(http.StatusRequestEntityTooLarge, "invalid_request_error", "", "request_too_large",
			"request body over the limit of %d bytes", limit)
	case errors.As(err, &typeErr):
		return invalid(typeErr.Field, "field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, "invalid_request_error", "", "invalid_json", "empty request body: expected a JSON object")
	default:
		return newError(http.StatusBadRequest, "invalid_request_error", "", "invalid_json", "request body is not valid JSON: %v", err)
	}
}

// limits are the server's bounds that validation checks against.
type limits struct {
	model        string
	maxN         int
	maxPositions int
	vocab        int
}

// common validates the shared parameters into j.
func (s *sampling) common(lim limits, j *job, maxTokens *int) error {
	if s.Model == "" {
		return invalid("model", "you must provide a model parameter")
	}
	if s.Model != lim.model {
		return newError(http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			"the model %q does not exist; this server serves %q", s.Model, lim.model)
	}
	j.n = 1
	if s.N != nil {
		if *s.N < 1 || *s.N > lim.maxN {
			return invalid("n", "n = %d: must be between 1 and %d", *s.N, lim.maxN)
		}
		j.n = *s.N
	}
	p := generate.SamplingParams{Temperature: 1, TopP: 1, MaxNewTokens: lim.maxPositions}
	if t := s.Temperature; t != nil {
		if math.IsNaN(*t) || *t < 0 || *t > 2 {
			return invalid("temperature", "temperature %v: must be between 0 and 2", *t)
		}
		p.Temperature = *t
	}
	if t := s.TopP; t != nil {
		if math.IsNaN(*t) || *t <= 0 || *t > 1 {
			return invalid("top_p", "top_p %v: must be in (0, 1]", *t)
		}
		p.TopP = *t
	}
	if k := s.TopK; k != nil {
		// vLLM's convention: -1 (or 0) disables top-k.
		if *k < -1 {
			return invalid("top_k", "top_k %d: must be -1 (off) or positive", *k)
		}
		p.TopK = max(*k, 0)
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return invalid("max_tokens", "max_tokens %d: must be at least 1", *maxTokens)
		}
		p.MaxNewTokens = *maxTokens
	}
	for name, v := range map[string]*float64{"presence_penalty": s.PresencePenalty, "frequency_penalty": s.FrequencyPenalty} {
		if v != nil && *v != 0 {
			return invalid(name, "%s is not supported (only 0)", name)
		}
	}
	stops, err := parseStop(s.Stop)
	if err != nil {
		return err
	}
	p.StopStrings = stops
	j.stops = stops
	if s.Seed != nil {
		j.seed = uint64(*s.Seed)
	} else {
		j.seed = freshSeed()
	}
	j.stream = s.Stream
	j.ignoreEOS = s.IgnoreEOS
	if s.StreamOptions != nil {
		if !s.Stream {
			return invalid("stream_options", "stream_options is only allowed when stream is true")
		}
		j.includeUsage = s.StreamOptions.IncludeUsage
	}
	j.params = p
	return nil
}

// parseStop reads "stop": null, a string, or a list of up to 4 strings.
func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, invalid("stop", "stop: empty string")
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid("stop", "stop: expected a string or a list of strings")
	}
	if len(list) > 4 {
		return nil, invalid("stop", "stop: at most 4 sequences, got %d", len(list))
	}
	for _, s := range list {
		if s == "" {
			return nil, invalid("stop", "stop: empty string in the list")
		}
	}
	return list, nil
}

// chatJob validates a chat request and renders its prompt with the
// model's chat template.
func (req *chatRequest) job(lim limits, tok *tokenizer.Tokenizer) (*job, error) {
	j := &job{chat: true}
	maxTokens := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	if err := req.common(lim, j, maxTokens); err != nil {
		return nil, err
	}
	if len(req.Tools) > 0 && string(req.Tools) != "null" {
		return nil, invalid("tools", "tools are not supported")
	}
	if f := req.ResponseFormat; f != nil && f.Type != "" && f.Type != "text" {
		return nil, invalid("response_format", "response_format %q is not supported (only \"text\")", f.Type)
	}
	if req.Logprobs != nil {
		j.logprobs = *req.Logprobs
	}
	if t := req.TopLogprobs; t != nil {
		if *t < 0 || *t > 20 {
			return nil, invalid("top_logprobs", "top_logprobs %d: must be between 0 and 20", *t)
		}
		if !j.logprobs {
			return nil, invalid("top_logprobs", "top_logprobs needs logprobs set to true")
		}
		j.topLogprobs = *t
		j.params.TopLogProbs = *t
	}
	if len(req.Messages) == 0 {
		return nil, invalid("messages", "messages: at least one message is required")
	}
	msgs := make([]tokenizer.Message, len(req.Messages))
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		if m.Role == "" {
			return nil, invalid(param+".role", "%s: missing role", param)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return nil, invalid(param+".content", "%s.content: %v", param, err)
		}
		msgs[i] = tokenizer.Message{Role: m.Role, Content: text}
	}
	ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: msgs})
	if err != nil {
		return nil, invalid("messages", "messages: %v", err)
	}
	j.prompts = [][]int{ids}
	return j, j.checkLength(lim, "messages")
}

// messageText accepts OpenAI's content forms: a string, or a list of
// {"type":"text","text":...} parts joined in order.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("expected a string or a list of text parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("part %d has type %q: only text parts are supported", i, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// job validates a completion request and tokenizes its prompts.
func (req *completionRequest) job(lim limits, tok *tokenizer.Tokenizer) (*job, error) {
	j := &job{}
	maxTokens := req.MaxTokens
	if maxTokens == nil {
		// OpenAI's completions default.
		sixteen := 16
		maxTokens = &sixteen
	}
	if err := req.common(lim, j, maxTokens); err != nil {
		return nil, err
	}
	switch {
	case req.Echo:
		return nil, invalid("echo", "echo is not supported")
	case req.Suffix != nil && *req.Suffix != "":
		return nil, invalid("suffix", "suffix is not supported")
	case req.BestOf != nil && *req.BestOf != j.n:
		return nil, invalid("best_of", "best_of other than n is not supported")
	}
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 5 {
			return nil, invalid("logprobs", "logprobs %d: must be between 0 and 5", *req.Logprobs)
		}
		j.logprobs = true
		j.topLogprobs = *req.Logprobs
		j.params.TopLogProbs = *req.Logprobs
	}
	prompts, err := parsePrompt(req.Prompt, tok, lim.vocab)
	if err != nil {
		return nil, err
	}
	j.prompts = prompts
	return j, j.checkLength(lim, "prompt")
}

// parsePrompt reads "prompt": a string, a list of strings, a list of
// token ids, or a list of token id lists.
func parsePrompt(raw json.RawMessage, tok *tokenizer.Tokenizer, vocab int) ([][]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid("prompt", "you must provide a prompt")
	}
	// Each form is tried on fresh variables: a failed Unmarshal can leave
	// a partly filled value behind.
	var texts []string
	var idLists [][]int
	if one, ok := tryJSON[string](raw); ok {
		texts = []string{one}
	} else if list, ok := tryJSON[[]string](raw); ok {
		texts = list
	} else if ids, ok := tryJSON[[]int](raw); ok {
		idLists = [][]int{ids}
	} else if lists, ok := tryJSON[[][]int](raw); ok {
		idLists = lists
	} else {
		return nil, invalid("prompt", "prompt: expected a string, a list of strings, or token ids")
	}
	for _, t := range texts {
		idLists = append(idLists, tok.Encode(t))
	}
	if len(idLists) == 0 {
		return nil, invalid("prompt", "prompt: empty list")
	}
	for i, l := range idLists {
		if len(l) == 0 {
			return nil, invalid("prompt", "prompt %d encodes to no tokens", i)
		}
		for _, id := range l {
			if id < 0 || id >= vocab {
				return nil, invalid("prompt", "prompt %d: token id %d outside the vocabulary of %d", i, id, vocab)
			}
		}
	}
	return idLists, nil
}

// checkLength refuses prompts that leave no room in the context window.
func (j *job) checkLength(lim limits, param string) error {
	for i, p := range j.prompts {
		if len(p) >= lim.maxPositions {
			return tooLong(param, "prompt %d has %d tokens; this model's context is %d tokens", i, len(p), lim.maxPositions)
		}
	}
	return nil
}

func tryJSON[T any](raw json.RawMessage) (T, bool) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		var zero T
		return zero, false
	}
	return v, true
}
