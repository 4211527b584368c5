package oracle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// ReadRows reads prompt rows (RL prompts, eval prompts, or scored rows when
// they carry a response) from a JSONL file:
// {"id","messages"|"prompt","oracle","tests"?,"meta"?,"response"?}.
// Every problem is reported with file:line.
func ReadRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeRows(f, path)
}

// DecodeRows is ReadRows on a stream; name is used in errors.
func DecodeRows(r io.Reader, name string) ([]Row, error) {
	var rows []Row
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var row Row
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if err := row.validatePrompt(); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if prev, dup := seen[row.ID]; dup {
			return nil, fmt.Errorf("%s:%d: id %q already used on line %d", name, line, row.ID, prev)
		}
		seen[row.ID] = line
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", name)
	}
	return rows, nil
}

// validatePrompt checks what a prompt row needs before any response exists.
func (r Row) validatePrompt() error {
	if r.ID == "" {
		return fmt.Errorf("row without \"id\"")
	}
	if len(r.Messages) == 0 && r.Prompt == "" {
		return fmt.Errorf("row %q has neither \"messages\" nor \"prompt\"", r.ID)
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return fmt.Errorf("row %q: message %d has unknown role %q (want system, user or assistant)", r.ID, i, m.Role)
		}
	}
	if !slices.Contains(Oracles, r.Oracle) {
		return fmt.Errorf("row %q: unknown oracle %q (want one of %v)", r.ID, r.Oracle, Oracles)
	}
	if r.Oracle == OracleCorrectness {
		if _, err := r.Tests.Kind(); err != nil {
			return fmt.Errorf("row %q: %w", r.ID, err)
		}
	}
	return nil
}
