package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"purpcode/model/qwen2"
)

// scoreRow is a pre-tokenized row; labels default to the inputs (every
// token after the first is a target), HF convention with -100 ignored.
type scoreRow struct {
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

func runScore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("score", stderr)
	modelDir := fs.String("model", "", "Hugging Face model directory (config.json + safetensors)")
	data := fs.String("data", "", "JSONL file of {\"input_ids\":[...],\"labels\":[...]} rows (labels optional)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	cpuFlags := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelDir == "" || *data == "" {
		fmt.Fprintln(stderr, "purpcode score: --model and --data are required")
		return errUsage
	}
	rows, err := readScoreRows(*data)
	if err != nil {
		return err
	}
	be, closeBE, err := cpuFlags.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	m, err := qwen2.LoadInference(*modelDir, be)
	if err != nil {
		return err
	}
	acts := map[int]*qwen2.Acts{}
	var total float64
	var totalTok int
	enc := json.NewEncoder(stdout)
	if !*asJSON {
		fmt.Fprintf(stdout, "%5s %7s %7s %12s %12s\n", "row", "tokens", "targets", "loss", "perplexity")
	}
	for i, r := range rows {
		b := &qwen2.Batch{B: 1, T: len(r.InputIDs), IDs: r.InputIDs, Targets: qwen2.ShiftLabels(r.Labels)}
		if err := m.Validate(b); err != nil {
			return fmt.Errorf("%s:%d: %w", *data, i+1, err)
		}
		a := acts[b.T]
		if a == nil {
			a = m.NewActs(1, b.T)
			acts[b.T] = a
		}
		m.Forward(a, b)
		sum, n := m.Loss(a, b, false, 0)
		total += sum
		totalTok += n
		loss := math.NaN()
		if n > 0 {
			loss = sum / float64(n)
		}
		if *asJSON {
			if err := enc.Encode(map[string]any{"row": i, "tokens": b.T, "target_tokens": n, "loss": jsonFloat(loss), "perplexity": jsonFloat(math.Exp(loss))}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(stdout, "%5d %7d %7d %12.8f %12.4f\n", i, b.T, n, loss, math.Exp(loss))
		}
	}
	if totalTok == 0 {
		return fmt.Errorf("%s: no target tokens (all labels are -100)", *data)
	}
	mean := total / float64(totalTok)
	if *asJSON {
		return enc.Encode(map[string]any{"mean_loss": mean, "perplexity": math.Exp(mean), "target_tokens": totalTok, "rows": len(rows)})
	}
	fmt.Fprintf(stdout, "mean loss %.10f  perplexity %.6f  over %d target tokens in %d rows (token mean)\n", mean, math.Exp(mean), totalTok, len(rows))
	return nil
}

// jsonFloat keeps NaN (a row without targets) representable in JSON.
func jsonFloat(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

func readScoreRows(path string) ([]scoreRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []scoreRow
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var r scoreRow
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if len(r.InputIDs) == 0 {
			return nil, fmt.Errorf("%s:%d: input_ids is missing or empty", path, line)
		}
		if r.Labels == nil {
			r.Labels = r.InputIDs
		} else if len(r.Labels) != len(r.InputIDs) {
			return nil, fmt.Errorf("%s:%d: %d labels for %d input_ids", path, line, len(r.Labels), len(r.InputIDs))
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}
