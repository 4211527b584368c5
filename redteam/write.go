package redteam

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File names written by WriteDir (the tuning files) and WriteTest (the
// test split, kept apart so that only the final evaluation opens it).
const (
	FileTrain      = "train.jsonl"        // train prompt rows
	FileValidation = "validation.jsonl"   // validation prompt rows (choosing knobs)
	FileTest       = "heldout-test.jsonl" // test prompt rows (written by WriteTest only)
	FileCorpus     = "corpus.jsonl"       // pretraining chat rows {"messages":[...]}
	FileCorpusText = "corpus.txt"         // plain text of the corpus, for BPE training
	FileSummary    = "summary.json"
)

// WriteJSONL writes one JSON object per line, without HTML escaping (the
// data is code and prose, and "<" reads better than "\u003c").
func WriteJSONL[T any](w io.Writer, rows []T) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("encode row %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// WriteCorpusText writes every message content of every conversation, one
// conversation per paragraph (contents joined by newlines, a blank line
// between conversations).
func WriteCorpusText(w io.Writer, convs []Conversation) error {
	bw := bufio.NewWriter(w)
	for _, c := range convs {
		for _, m := range c.Messages {
			bw.WriteString(m.Content)
			bw.WriteByte('\n')
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Summary counts what a world holds.
type Summary struct {
	Seed       uint64 `json:"seed"`
	CorpusSeed uint64 `json:"corpus_seed"`
	// Prompts[split][kind] counts prompt rows; PromptsByOracle likewise by
	// oracle; Tasks[split][family] counts coding tasks (each is two rows).
	Prompts             map[string]map[string]int `json:"prompts"`
	PromptsByOracle     map[string]map[string]int `json:"prompts_by_oracle"`
	Tasks               map[string]map[string]int `json:"tasks"`
	Jailbreaks          map[string]map[string]int `json:"jailbreaks"`
	TestTemplates       []string                  `json:"test_templates"`
	ValidationTemplates []string                  `json:"validation_templates"`
	// InCorpus[split] counts the split's prompt rows whose prompt is in the
	// corpus verbatim (0 for test when CorpusSeed == Seed).
	InCorpus map[string]int `json:"in_corpus"`
	Corpus   CorpusSummary  `json:"corpus"`
	Options  Options        `json:"options"`
}

// CorpusSummary counts corpus conversations by kind, system prompt and
// behaviour: Behaviour[kind]["system"|"plain"][behaviour].
type CorpusSummary struct {
	Total     int                                  `json:"total"`
	ByKind    map[string]int                       `json:"by_kind"`
	Behaviour map[string]map[string]map[string]int `json:"behaviour"`
}

func inc(m map[string]map[string]int, a, b string) {
	if m[a] == nil {
		m[a] = map[string]int{}
	}
	m[a][b]++
}

// Summarize counts the world.
func (w *World) Summarize() Summary {
	s := Summary{
		Seed:                w.Options.Seed,
		CorpusSeed:          w.Options.CorpusSeed,
		Prompts:             map[string]map[string]int{},
		PromptsByOracle:     map[string]map[string]int{},
		Tasks:               map[string]map[string]int{},
		Jailbreaks:          map[string]map[string]int{},
		TestTemplates:       w.TestTemplates,
		ValidationTemplates: w.ValidationTemplates,
		InCorpus: map[string]int{
			SplitTrain: w.CorpusOverlap(w.Train), SplitValidation: w.CorpusOverlap(w.Validation), SplitTest: w.CorpusOverlap(w.Test),
		},
		Options: w.Options,
		Corpus: CorpusSummary{
			Total:     len(w.Corpus),
			ByKind:    map[string]int{},
			Behaviour: map[string]map[string]map[string]int{},
		},
	}
	for _, rows := range [][]PromptRow{w.Train, w.Validation, w.Test} {
		for _, r := range rows {
			inc(s.Prompts, r.Meta.Split, r.Meta.Kind)
			inc(s.PromptsByOracle, r.Meta.Split, r.Oracle)
			if r.Oracle == OracleCodeSec {
				inc(s.Tasks, r.Meta.Split, r.Meta.Family)
			}
			if r.Meta.Kind == KindMalicious {
				jb := r.Meta.Jailbreak
				if jb == "" {
					jb = "none"
				}
				inc(s.Jailbreaks, r.Meta.Split, jb)
			}
		}
	}
	for _, c := range w.Corpus {
		s.Corpus.ByKind[c.Meta.Kind]++
		if s.Corpus.Behaviour[c.Meta.Kind] == nil {
			s.Corpus.Behaviour[c.Meta.Kind] = map[string]map[string]int{}
		}
		sys := "plain"
		if c.System {
			sys = "system"
		}
		inc(s.Corpus.Behaviour[c.Meta.Kind], sys, c.Behaviour)
	}
	return s
}

type worldFile struct {
	name  string
	write func(io.Writer) error
}

// WriteDir writes the world's tuning files (train and validation rows,
// corpus, summary) into dir (created if missing) and returns the paths
// written. The test rows are not among them: see WriteTest.
func (w *World) WriteDir(dir string) ([]string, error) {
	summary, err := json.MarshalIndent(w.Summarize(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	return writeFiles(dir, []worldFile{
		{FileTrain, func(out io.Writer) error { return WriteJSONL(out, w.Train) }},
		{FileValidation, func(out io.Writer) error { return WriteJSONL(out, w.Validation) }},
		{FileCorpus, func(out io.Writer) error { return WriteJSONL(out, w.Corpus) }},
		{FileCorpusText, func(out io.Writer) error { return WriteCorpusText(out, w.Corpus) }},
		{FileSummary, func(out io.Writer) error { _, err := out.Write(append(summary, '\n')); return err }},
	})
}

// WriteTest writes the test rows to dir/FileTest and returns the path.
// Keep dir apart from the tuning files' so that nothing but the final
// evaluation is handed it.
func (w *World) WriteTest(dir string) (string, error) {
	names, err := writeFiles(dir, []worldFile{{FileTest, func(out io.Writer) error { return WriteJSONL(out, w.Test) }}})
	if err != nil {
		return "", err
	}
	return names[0], nil
}

func writeFiles(dir string, files []worldFile) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var names []string
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.write(&buf); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := writeAtomic(path, buf.Bytes()); err != nil {
			return nil, err
		}
		names = append(names, path)
	}
	return names, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(name, 0o644)
	}
	if werr == nil {
		werr = os.Rename(name, path)
	}
	if werr != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// ReadPromptRows reads a prompt-row JSONL file (as written by WriteDir).
func ReadPromptRows(path string) ([]PromptRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read prompt rows: %w", err)
	}
	var rows []PromptRow
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r PromptRow
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
