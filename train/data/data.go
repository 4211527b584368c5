package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"purpcode/engine"
)

// IgnoreIndex marks a label or target without loss (HF's -100).
const IgnoreIndex = engine.IgnoreIndex

// Over-long row policies.
const (
	OverlongTruncate = "truncate"
	OverlongSkip     = "skip"
)

// Which assistant turns of a chat row carry the loss.
const (
	TrainLastAssistant = "last-assistant"
	TrainAllAssistant  = "all-assistant"
)

// Skip reasons counted in Stats.Skipped.
const (
	SkipNoAssistant     = "no_assistant_turn"
	SkipNoLabels        = "no_labels"
	SkipOverlong        = "overlong"
	SkipTruncatedToNone = "no_targets_after_truncation"
)

// Roles accepted in chat rows.
var knownRoles = map[string]bool{"system": true, "user": true, "assistant": true, "tool": true}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Encoded is a tokenized conversation with per-token masks: Assistant marks
// the tokens of every assistant turn the template emits as the model's
// output, LastAssistant those of the last assistant turn only.
type Encoded struct {
	IDs                      []int
	Assistant, LastAssistant []bool
}

// ChatEncoder renders a conversation with a chat template and tokenizes it
// (the tokenizer package's ApplyChat, adapted by the trainer).
type ChatEncoder interface {
	EncodeChat(msgs []Message) (*Encoded, error)
}

// Options controls loading.
type Options struct {
	SeqLen   int    // maximum tokens per row (the sequence length T)
	Overlong string // OverlongTruncate (default) or OverlongSkip
	TrainOn  string // TrainLastAssistant (default) or TrainAllAssistant
	Vocab    int    // token ids must be below this; 0 disables the check
	Chat     ChatEncoder
}

// Row is one training example: token ids and HF labels (unshifted).
type Row struct {
	IDs, Labels []int32
	Targets     int    // labels counted as next-token targets (labels[1:] != -100)
	Source      string // file:line
}

// Stats describes what loading kept, cut and dropped.
type Stats struct {
	Files     []string       `json:"files"`
	Lines     int            `json:"lines"` // non-blank lines read
	Rows      int            `json:"rows"`  // rows kept
	Truncated int            `json:"truncated"`
	Skipped   map[string]int `json:"skipped"` // by reason
	Tokens    int64          `json:"tokens"`  // in kept rows
	Targets   int64          `json:"target_tokens"`
}

// SkippedTotal is the number of skipped rows over all reasons.
func (s *Stats) SkippedTotal() int {
	n := 0
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// String summarises the stats for a run log.
func (s *Stats) String() string {
	var parts []string
	reasons := make([]string, 0, len(s.Skipped))
	for r := range s.Skipped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s=%d", r, s.Skipped[r]))
	}
	skipped := "none"
	if len(parts) > 0 {
		skipped = strings.Join(parts, " ")
	}
	return fmt.Sprintf("%d rows kept of %d lines in %d file(s), %d tokens, %d target tokens, %d truncated, skipped: %s",
		s.Rows, s.Lines, len(s.Files), s.Tokens, s.Targets, s.Truncated, skipped)
}

// Dataset is the loaded rows of one or more files, in file order.
type Dataset struct {
	Rows  []Row
	Stats Stats
}

// Load reads JSONL files (see the package comment for formats and policy).
func Load(paths []string, opts Options) (*Dataset, error) {
	if opts.SeqLen < 2 {
		return nil, fmt.Errorf("data: sequence length %d: want at least 2", opts.SeqLen)
	}
	switch opts.Overlong {
	case "":
		opts.Overlong = OverlongTruncate
	case OverlongTruncate, OverlongSkip:
	default:
		return nil, fmt.Errorf("data: overlong policy %q: want %s or %s", opts.Overlong, OverlongTruncate, OverlongSkip)
	}
	switch opts.TrainOn {
	case "":
		opts.TrainOn = TrainLastAssistant
	case TrainLastAssistant, TrainAllAssistant:
	default:
		return nil, fmt.Errorf("data: train-on %q: want %s or %s", opts.TrainOn, TrainLastAssistant, TrainAllAssistant)
	}
	if len(paths) == 0 {
		return nil, errors.New("data: no data files given")
	}
	d := &Dataset{Stats: Stats{Files: append([]string(nil), paths...), Skipped: map[string]int{}}}
	for _, p := range paths {
		if err := d.loadFile(p, opts); err != nil {
			return nil, err
		}
	}
	if len(d.Rows) == 0 {
		return nil, fmt.Errorf("data: %s: no usable rows (%s)", strings.Join(paths, ", "), d.Stats.String())
	}
	return d, nil
}

func (d *Dataset) loadFile(path string, opts Options) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("data: read %s: %w", path, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			d.Stats.Lines++
			src := fmt.Sprintf("%s:%d", path, line)
			if perr := d.addLine(t, src, opts); perr != nil {
				return fmt.Errorf("data: %s: %w", src, perr)
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

func (d *Dataset) skip(reason string) { d.Stats.Skipped[reason]++ }

// addLine parses one row and appends it, or counts a skip; an error is a
// structural problem of the row.
func (d *Dataset) addLine(line []byte, src string, opts Options) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	var ids, labels []int32
	msgs, hasMsgs := obj["messages"]
	rawIDs, hasIDs := obj["input_ids"]
	switch {
	case hasMsgs && hasIDs:
		return errors.New(`row has both "messages" and "input_ids"; want one of them`)
	case hasMsgs:
		var err error
		ids, labels, err = encodeChat(msgs, opts)
		if err != nil {
			return err
		}
		if ids == nil {
			d.skip(SkipNoAssistant)
			return nil
		}
	case hasIDs:
		var err error
		if ids, err = tokenList(rawIDs, "input_ids", false); err != nil {
			return err
		}
		if len(ids) == 0 {
			return errors.New(`"input_ids" is empty`)
		}
		if rawLabels, ok := obj["labels"]; ok && string(rawLabels) != "null" {
			if labels, err = tokenList(rawLabels, "labels", true); err != nil {
				return err
			}
			if len(labels) != len(ids) {
				return fmt.Errorf(`"labels" has %d entries for %d input_ids; want the same length`, len(labels), len(ids))
			}
		} else {
			labels = append([]int32(nil), ids...)
		}
	default:
		return errors.New(`row has neither "messages" (chat) nor "input_ids" (pre-tokenized)`)
	}
	if opts.Vocab > 0 {
		for i, id := range ids {
			if int(id) >= opts.Vocab {
				return fmt.Errorf("token id %d at position %d is outside the vocabulary (size %d)", id, i, opts.Vocab)
			}
			if l := labels[i]; l != IgnoreIndex && int(l) >= opts.Vocab {
				return fmt.Errorf("label %d at position %d is outside the vocabulary (size %d)", l, i, opts.Vocab)
			}
		}
	}
	if countTargets(labels) == 0 {
		d.skip(SkipNoLabels)
		return nil
	}
	if len(ids) > opts.SeqLen {
		if opts.Overlong == OverlongSkip {
			d.skip(SkipOverlong)
			return nil
		}
		ids, labels = ids[:opts.SeqLen:opts.SeqLen], labels[:opts.SeqLen:opts.SeqLen]
		if countTargets(labels) == 0 {
			d.skip(SkipTruncatedToNone)
			return nil
		}
		d.Stats.Truncated++
	}
	row := Row{IDs: ids, Labels: labels, Targets: countTargets(labels), Source: src}
	d.Rows = append(d.Rows, row)
	d.Stats.Rows++
	d.Stats.Tokens += int64(len(ids))
	d.Stats.Targets += int64(row.Targets)
	return nil
}

// countTargets is the number of labels that become next-token targets: the
// first label of a row has no preceding token to predict it.
func countTargets(labels []int32) int {
	n := 0
	for i := 1; i < len(labels); i++ {
		if labels[i] != IgnoreIndex {
			n++
		}
	}
	return n
}

func tokenList(raw json.RawMessage, field string, labels bool) ([]int32, error) {
	var vals []json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&vals); err != nil {
		return nil, fmt.Errorf("%q: want a list of integers: %w", field, err)
	}
	out := make([]int32, len(vals))
	for i, v := range vals {
		n, err := v.Int64()
		ok := err == nil && n >= 0 && n <= 1<<31-1
		if labels && n == IgnoreIndex && err == nil {
			ok = true
		}
		if !ok {
			want := "a non-negative token id"
			if labels {
				want += " or -100"
			}
			return nil, fmt.Errorf("%q[%d] = %s: want %s", field, i, v, want)
		}
		out[i] = int32(n)
	}
	return out, nil
}

// encodeChat validates and encodes a "messages" value. It returns nil ids
// (and no error) for a conversation without an assistant turn.
func encodeChat(raw json.RawMessage, opts Options) ([]int32, []int32, error) {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, nil, fmt.Errorf(`"messages": want a list of {"role","content"} objects: %w`, err)
	}
	if len(list) == 0 {
		return nil, nil, errors.New(`"messages" is empty`)
	}
	msgs := make([]Message, len(list))
	hasAssistant := false
	for i, m := range list {
		for _, key := range []string{"role", "content"} {
			v, ok := m[key]
			if !ok || string(v) == "null" {
				return nil, nil, fmt.Errorf("messages[%d]: missing %q", i, key)
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, nil, fmt.Errorf("messages[%d]: %q must be a string, got %s", i, key, abbreviate(v))
			}
			if key == "role" {
				msgs[i].Role = s
			} else {
				msgs[i].Content = s
			}
		}
		if !knownRoles[msgs[i].Role] {
			return nil, nil, fmt.Errorf("messages[%d]: unknown role %q (want system, user, assistant or tool)", i, msgs[i].Role)
		}
		hasAssistant = hasAssistant || msgs[i].Role == "assistant"
	}
	if !hasAssistant {
		return nil, nil, nil
	}
	if opts.Chat == nil {
		return nil, nil, errors.New(`chat row ("messages") but no chat template/tokenizer is available`)
	}
	enc, err := opts.Chat.EncodeChat(msgs)
	if err != nil {
		return nil, nil, fmt.Errorf("render chat: %w", err)
	}
	mask := enc.LastAssistant
	if opts.TrainOn == TrainAllAssistant {
		mask = enc.Assistant
	}
	if len(mask) != len(enc.IDs) {
		return nil, nil, fmt.Errorf("render chat: %d mask entries for %d tokens", len(mask), len(enc.IDs))
	}
	ids := make([]int32, len(enc.IDs))
	labels := make([]int32, len(enc.IDs))
	for i, id := range enc.IDs {
		if id < 0 || id > 1<<31-1 {
			return nil, nil, fmt.Errorf("render chat: token id %d out of range", id)
		}
		ids[i] = int32(id)
		labels[i] = IgnoreIndex
		if mask[i] {
			labels[i] = int32(id)
		}
	}
	return ids, labels, nil
}

func abbreviate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
