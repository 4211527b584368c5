package suite

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Scorer names.
const (
	ScorerEvalPlus   = "evalplus"
	ScorerSecureCode = "secure-code"
	ScorerRefusal    = "refusal"
	ScorerMITRE      = "mitre"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Item is one prompt of a suite and what its scorer needs (see the package
// documentation for the fields of each scorer).
type Item struct {
	ID       string    `json:"id"`
	Messages []Message `json:"messages,omitempty"`
	Prompt   string    `json:"prompt,omitempty"`
	Scorer   string    `json:"scorer"`

	Language string `json:"language,omitempty"`

	EntryPoint string          `json:"entry_point,omitempty"`
	Canonical  string          `json:"canonical,omitempty"`
	BaseInputs json.RawMessage `json:"base_inputs,omitempty"`
	PlusInputs json.RawMessage `json:"plus_inputs,omitempty"`
	Atol       float64         `json:"atol,omitempty"`
	Compare    string          `json:"compare,omitempty"`
	Decode     string          `json:"decode,omitempty"`

	Label string `json:"label,omitempty"`

	Meta map[string]any `json:"meta,omitempty"`
}

// Suite is a named list of items.
type Suite struct {
	Name  string
	Items []Item
	// Source says where the items came from (a file, or the vendored data).
	Source string
}

// Chat returns the item's conversation, with system (when not empty) as
// the first turn unless the item has its own system turn.
func (it *Item) Chat(system string) []Message {
	msgs := it.Messages
	if len(msgs) == 0 {
		msgs = []Message{{Role: "user", Content: it.Prompt}}
	}
	if system == "" || msgs[0].Role == "system" {
		return msgs
	}
	return append([]Message{{Role: "system", Content: system}}, msgs...)
}

// validate checks the fields the item's scorer needs.
func (it *Item) validate() error {
	if it.ID == "" {
		return errors.New(`missing "id"`)
	}
	switch {
	case len(it.Messages) == 0 && it.Prompt == "":
		return errors.New(`needs "messages" or "prompt"`)
	case len(it.Messages) > 0 && it.Prompt != "":
		return errors.New(`has both "messages" and "prompt"`)
	}
	for i, m := range it.Messages {
		if m.Role == "" {
			return fmt.Errorf("messages[%d] has no role", i)
		}
	}
	switch it.Scorer {
	case ScorerEvalPlus:
		if it.EntryPoint == "" || it.Canonical == "" || len(it.BaseInputs) == 0 {
			return errors.New(`evalplus needs "entry_point", "canonical" and "base_inputs"`)
		}
		for name, raw := range map[string]json.RawMessage{"base_inputs": it.BaseInputs, "plus_inputs": it.PlusInputs} {
			var args [][]json.RawMessage
			if len(raw) > 0 && json.Unmarshal(raw, &args) != nil {
				return fmt.Errorf("%q must be a list of argument lists", name)
			}
		}
		if it.Decode != "" && !slices.Contains(inputDecodings, it.Decode) {
			return fmt.Errorf("unknown \"decode\" %q (want one of %s)", it.Decode, strings.Join(inputDecodings, ", "))
		}
		switch it.Compare {
		case "", "set", "truthy", "poly":
		default:
			return fmt.Errorf(`unknown "compare" %q (want set, truthy or poly)`, it.Compare)
		}
	case ScorerSecureCode:
		if it.Language == "" {
			return errors.New(`secure-code needs "language"`)
		}
		it.Language = strings.ToLower(it.Language)
	case ScorerRefusal:
		if it.Label != "safe" && it.Label != "unsafe" {
			return fmt.Errorf(`refusal needs "label" "safe" or "unsafe", got %q`, it.Label)
		}
	case ScorerMITRE:
	case "":
		return errors.New(`missing "scorer"`)
	default:
		return fmt.Errorf("unknown scorer %q (want evalplus, secure-code, refusal or mitre)", it.Scorer)
	}
	return nil
}

// ReadJSONL reads a suite file; name is used in errors ("file:line: ...").
// Blank lines are skipped; ids must be unique.
func ReadJSONL(r io.Reader, name string) ([]Item, error) {
	br := bufio.NewReader(r)
	var items []Item
	seen := map[string]int{}
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var it Item
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&it); derr != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, derr)
			}
			if verr := it.validate(); verr != nil {
				return nil, fmt.Errorf("%s:%d: item %q: %w", name, line, it.ID, verr)
			}
			if prev, ok := seen[it.ID]; ok {
				return nil, fmt.Errorf("%s:%d: id %q already used on line %d", name, line, it.ID, prev)
			}
			seen[it.ID] = line
			items = append(items, it)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no items", name)
	}
	return items, nil
}
