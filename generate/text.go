package generate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// StopTokens returns the ids that end generation for a model directory:
// eos_token_id of generation_config.json (an int or a list; the file is
// optional), then config.json's (cfg.EOS), then the tokenizer's EOS when
// tok is not nil, without duplicates.
func StopTokens(dir string, cfg *qwen2.Config, tok *tokenizer.Tokenizer) ([]int, error) {
	var ids []int
	path := filepath.Join(dir, "generation_config.json")
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		ids, err = parseGenerationEOS(data, path)
		if err != nil {
			return nil, err
		}
	}
	ids = append(ids, cfg.EOS...)
	if tok != nil {
		if id, ok := tok.EOS(); ok {
			ids = append(ids, id)
		}
	}
	var out []int
	for _, id := range ids {
		if id < 0 || id >= cfg.Vocab {
			return nil, fmt.Errorf("%s: eos token id %d outside vocab_size %d", dir, id, cfg.Vocab)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// parseGenerationEOS reads eos_token_id (int, list of ints, or absent/null)
// from generation_config.json content.
func parseGenerationEOS(data []byte, name string) ([]int, error) {
	var doc struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	raw := bytes.TrimSpace(doc.EOS)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: field \"eos_token_id\": want an integer or a list of integers, got %s", name, raw)
	}
	return list, nil
}

// PromptSpec is a prompt in text form: either chat messages, rendered with
// the tokenizer's chat template and its generation prompt, or a raw Prompt
// string used as is. Prefix (e.g. "## Analysis\n") is appended after either
// as the start of the assistant's answer: the model continues from it.
type PromptSpec struct {
	Messages []tokenizer.Message
	Prompt   string
	Prefix   string
}

// BuildPrompt renders and tokenizes a prompt; it returns the token ids
// (prefix included) and the full prompt text they encode.
func BuildPrompt(tok *tokenizer.Tokenizer, p PromptSpec) ([]int, string, error) {
	var text string
	switch {
	case len(p.Messages) > 0 && p.Prompt != "":
		return nil, "", errors.New("prompt has both messages and a raw prompt")
	case len(p.Messages) > 0:
		s, err := tok.RenderChat(p.Messages, tokenizer.ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			return nil, "", fmt.Errorf("render chat: %w", err)
		}
		text = s
	case p.Prompt != "":
		text = p.Prompt
	default:
		return nil, "", errors.New("prompt has neither messages nor a raw prompt")
	}
	// Tokenize template and prefix as one string, as a reader of the full
	// text would; the prefix's tokens are part of the prompt.
	text += p.Prefix
	ids := tok.Encode(text)
	if len(ids) == 0 {
		return nil, "", errors.New("prompt encodes to no tokens")
	}
	return ids, text, nil
}

// CompletionText is the text of a sample as the oracles read it: the
// assistant prefix that was prefilled, then the decoded tokens (special
// tokens such as the final EOS skipped).
func CompletionText(tok *tokenizer.Tokenizer, prefix string, tokens []int) string {
	return prefix + tok.Decode(tokens, true)
}
