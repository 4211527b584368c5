package distill

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"purpcode/oracle"
)

// SFTRow is one line of sft.jsonl: the row's original conversation and the
// selected answer, then provenance that train/data ignores.
type SFTRow struct {
	Messages []oracle.Message `json:"messages"`
	ID       string           `json:"id"`
	Oracle   string           `json:"oracle"`
	Reward   float64          `json:"reward"`
	Sample   int              `json:"sample"`   // index of the selected sample
	Verified int              `json:"verified"` // samples of K kept
	CWE      string           `json:"cwe,omitempty"`
}

// SampleRecord is one line of samples.jsonl.
type SampleRecord struct {
	ID           string  `json:"id"`
	Sample       int     `json:"sample"`
	Oracle       string  `json:"oracle"`
	Reward       float64 `json:"reward"`
	Format       bool    `json:"format"`
	FormatReason string  `json:"format_reason,omitempty"`
	OracleScore  float64 `json:"oracle_score"`
	Detail       string  `json:"detail,omitempty"`
	Tokens       int     `json:"tokens"`
	FinishReason string  `json:"finish_reason"`
	Kept         bool    `json:"kept"`
	Selected     bool    `json:"selected"`
	Text         string  `json:"text"`
}

// outFile is an output written under a temporary name and renamed into
// place by commit, so an interrupted run leaves the previous files intact.
type outFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
	enc  *json.Encoder
}

func newOutFile(path string) (*outFile, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // keep code readable: <, > and & as they are
	return &outFile{path: path, f: f, w: w, enc: enc}, nil
}

type outputs struct {
	dir                  string
	sft, easy, samples   *outFile
	summary, table       *outFile
	all                  []*outFile
	committed, anySample bool
}

func createOutputs(dir string, samples bool) (*outputs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("distill: output dir: %w", err)
	}
	o := &outputs{dir: dir, anySample: samples}
	open := func(name string) (*outFile, error) {
		f, err := newOutFile(filepath.Join(dir, name))
		if err == nil {
			o.all = append(o.all, f)
		}
		return f, err
	}
	var err error
	if o.sft, err = open(SFTFile); err == nil {
		if o.easy, err = open(EasyFile); err == nil {
			if o.summary, err = open(SummaryFile); err == nil {
				if o.table, err = open(TableFile); err == nil && samples {
					o.samples, err = open(SamplesFile)
				}
			}
		}
	}
	if err != nil {
		o.abort()
		return nil, err
	}
	return o, nil
}

// add selects a prompt's answer and writes its lines.
func (o *outputs) add(row oracle.Row, samples []sample, opts Options, sum *Summary, res *Result) error {
	cands := make([]Candidate, len(samples))
	for j, s := range samples {
		cands[j] = Candidate{Index: j, Tokens: s.tokens, Reward: s.score.Reward}
	}
	best, kept := Best(cands, opts.MinReward)
	easy := IsEasy(kept, len(samples), opts.EasyFrac)
	cwe, _ := row.Meta["cwe"].(string)
	sum.prompt(row.Oracle, cwe, samples, kept, easy)
	if best >= 0 {
		msgs := append(Conversation(row), oracle.Message{Role: "assistant", Content: samples[best].text})
		r := SFTRow{Messages: msgs, ID: row.ID, Oracle: row.Oracle, Reward: samples[best].score.Reward, Sample: best, Verified: kept, CWE: cwe}
		if err := o.sft.enc.Encode(r); err != nil {
			return fmt.Errorf("distill: write %s: %w", SFTFile, err)
		}
	}
	if easy {
		res.EasyIDs = append(res.EasyIDs, row.ID)
		if _, err := fmt.Fprintln(o.easy.w, row.ID); err != nil {
			return fmt.Errorf("distill: write %s: %w", EasyFile, err)
		}
	}
	if o.samples != nil {
		for j, s := range samples {
			r := SampleRecord{
				ID: row.ID, Sample: j, Oracle: row.Oracle, Reward: s.score.Reward, Format: s.score.Format, FormatReason: s.score.FormatReason,
				OracleScore: s.score.OracleScore, Detail: s.score.Detail, Tokens: s.tokens, FinishReason: s.finish,
				Kept: s.score.Reward >= opts.MinReward, Selected: j == best, Text: s.text,
			}
			if err := o.samples.enc.Encode(r); err != nil {
				return fmt.Errorf("distill: write %s: %w", SamplesFile, err)
			}
		}
	}
	return nil
}

// commit writes the summary, flushes every file and renames them into
// place; it returns the paths.
func (o *outputs) commit(sum *Summary) ([]string, error) {
	o.summary.enc.SetIndent("", "  ")
	if err := o.summary.enc.Encode(sum); err != nil {
		return nil, fmt.Errorf("distill: write %s: %w", SummaryFile, err)
	}
	if _, err := o.table.w.WriteString(sum.Table()); err != nil {
		return nil, fmt.Errorf("distill: write %s: %w", TableFile, err)
	}
	var paths []string
	for _, f := range o.all {
		err := f.w.Flush()
		if err == nil {
			err = f.f.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("distill: write %s: %w", f.path, err)
		}
	}
	for _, f := range o.all {
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
		paths = append(paths, f.path)
	}
	o.committed = true
	if !o.anySample {
		// A samples file of an earlier run would not match these outputs.
		stale := filepath.Join(o.dir, SamplesFile)
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return paths, fmt.Errorf("distill: remove stale %s: %w", stale, err)
		}
	}
	return paths, nil
}

// abort removes the temporary files of an unfinished run.
func (o *outputs) abort() {
	if o.committed {
		return
	}
	for _, f := range o.all {
		f.f.Close()
		os.Remove(f.path + ".tmp")
	}
}
