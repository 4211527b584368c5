package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"purpcode/analyzer"
	"purpcode/redteam"
)

// Rule is one weakness of the Rule2Code catalog.
type Rule struct {
	// ID is the analyzer rule id, or the CWE id for a user entry.
	ID          string   `json:"id"`
	CWE         []string `json:"cwe"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	// Bad and Good are optional example snippets (user entries).
	Bad  string `json:"bad,omitempty"`
	Good string `json:"good,omitempty"`
	// Analyzer is true for the analyzer's own rules, whose findings then
	// match by rule id as well as by CWE.
	Analyzer bool `json:"analyzer,omitempty"`
}

// AnalyzerRules converts the analyzer's catalog; rules below minSev are
// left out (low-severity hygiene rules make poor red-team seeds).
func AnalyzerRules(rules []analyzer.Rule, minSev analyzer.Severity) []Rule {
	var out []Rule
	for _, r := range rules {
		if r.Severity < minSev {
			continue
		}
		out = append(out, Rule{ID: r.ID, CWE: r.CWE, Name: r.Title, Description: r.Description, Analyzer: true})
	}
	return out
}

// cweEntry is one line of a user CWE file. cwe may be a string or a list.
type cweEntry struct {
	ID          string          `json:"id"`
	CWE         json.RawMessage `json:"cwe"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Bad         string          `json:"bad"`
	Good        string          `json:"good"`
}

// ReadRules reads a user CWE catalog: JSONL, one
// {"id","name","description","bad"?,"good"?,"cwe"?} per line; id is a CWE
// id ("CWE-1333") unless cwe names it.
func ReadRules(path string) ([]Rule, error) {
	var out []Rule
	err := readJSONL(path, func(line int, raw []byte) error {
		var e cweEntry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return err
		}
		r := Rule{ID: strings.TrimSpace(e.ID), Name: e.Name, Description: e.Description, Bad: e.Bad, Good: e.Good}
		if len(e.CWE) > 0 {
			var one string
			if json.Unmarshal(e.CWE, &one) == nil {
				r.CWE = []string{one}
			} else if err := json.Unmarshal(e.CWE, &r.CWE); err != nil {
				return fmt.Errorf("cwe: want a string or a list of strings: %w", err)
			}
		} else if strings.HasPrefix(strings.ToUpper(r.ID), "CWE-") {
			r.CWE = []string{strings.ToUpper(r.ID)}
		}
		switch {
		case r.ID == "":
			return fmt.Errorf("entry without \"id\"")
		case len(r.CWE) == 0:
			return fmt.Errorf("entry %q: no CWE id (give \"cwe\" or use a CWE id as \"id\")", r.ID)
		case r.Name == "" && r.Description == "":
			return fmt.Errorf("entry %q: needs a name or a description", r.ID)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Seed is one malicious or benign seed request.
type Seed struct {
	ID     string `json:"id"`
	Prompt string `json:"prompt"`
	// Topic groups seeds in the manifest (a malicious template, "benign").
	Topic string `json:"topic,omitempty"`
}

// ReadSeeds reads seed requests: JSONL {"id","prompt","topic"?}, or plain
// text with one request per non-blank line (ids PREFIX-LINE).
func ReadSeeds(path, prefix string) ([]Seed, error) {
	var out []Seed
	seen := map[string]int{}
	err := readJSONL(path, func(line int, raw []byte) error {
		var s Seed
		if raw[0] == '{' {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&s); err != nil {
				return err
			}
		} else {
			s = Seed{ID: fmt.Sprintf("%s-%d", prefix, line), Prompt: string(raw)}
		}
		if s.ID == "" || strings.TrimSpace(s.Prompt) == "" {
			return fmt.Errorf("seed needs \"id\" and \"prompt\"")
		}
		if prev, dup := seen[s.ID]; dup {
			return fmt.Errorf("seed id %q already used on line %d", s.ID, prev)
		}
		seen[s.ID] = line
		out = append(out, s)
		return nil
	})
	return out, err
}

// WorldSeeds returns the train-split malicious requests without a
// jailbreak and the benign requests of a toy world, for runs without seed
// files. Validation and test templates are left out so that the world's
// held-out prompts stay held out.
func WorldSeeds(w *redteam.World) (malicious, benign []Seed) {
	for _, r := range w.Train {
		if len(r.Messages) == 0 {
			continue
		}
		s := Seed{ID: r.ID, Prompt: r.Messages[len(r.Messages)-1].Content, Topic: r.Meta.Family}
		switch {
		case r.Meta.Kind == redteam.KindMalicious && r.Meta.Jailbreak == redteam.JailbreakNone:
			malicious = append(malicious, s)
		case r.Meta.Kind == redteam.KindBenign:
			s.Topic = r.Meta.Template
			benign = append(benign, s)
		}
	}
	return malicious, benign
}

// readJSONL calls fn with each non-blank line (1-based numbers); errors
// name file and line.
func readJSONL(path string, fn func(line int, raw []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if err := fn(n, raw); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
