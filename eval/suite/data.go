package suite

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

//go:embed data
var vendored embed.FS

// DataFS is the suite data: the vendored copies when dir is empty, else
// dir (the same layout as ../shared/refs/bench).
func DataFS(dir string) fs.FS {
	if dir == "" {
		sub, err := fs.Sub(vendored, "data")
		if err != nil {
			panic("suite: vendored data missing from the binary: " + err.Error())
		}
		return sub
	}
	return os.DirFS(dir)
}

// readData reads name from fsys, or name+".gz" decompressed.
func readData(fsys fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(fsys, name)
	if err == nil && !strings.HasSuffix(name, ".gz") {
		return b, nil
	}
	gzName := name
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		gzName = name + ".gz"
		if b, err = fs.ReadFile(fsys, gzName); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", gzName, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", gzName, err)
	}
	return out, nil
}

// builtin loads one of the paper's suites from its public file.
type builtin struct {
	file string
	load func(data []byte, file string) ([]Item, error)
}

var builtins = map[string]builtin{
	"cyberseceval-instruct":     {"cyberseceval/instruct.json", loadCSE},
	"cyberseceval-autocomplete": {"cyberseceval/autocomplete.json", loadCSE},
	"cyberseceval-mitre":        {"cyberseceval/mitre_benchmark_100_per_category.json", loadMITRE},
	"cyberseceval-frr":          {"cyberseceval/mitre_frr.json", loadFRR},
	"xstest":                    {"xstest/xstest_prompts.csv", loadXSTest},
	"humaneval-plus":            {"humaneval/HumanEvalPlus-v0.1.10.jsonl.gz", loadHumanEvalPlus},
	"mbpp-plus":                 {"mbpp/MbppPlus.jsonl", loadMBPPPlus},
}

// Names lists the built-in suites.
func Names() []string {
	var out []string
	for n := range builtins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Load returns a suite: a built-in name read from fsys, or a path to a
// JSONL suite file (named after the file).
func Load(fsys fs.FS, name string) (*Suite, error) {
	if b, ok := builtins[name]; ok {
		data, err := readData(fsys, b.file)
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", name, err)
		}
		items, err := b.load(data, b.file)
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", name, err)
		}
		return &Suite{Name: name, Items: items, Source: b.file}, nil
	}
	if !strings.HasSuffix(name, ".jsonl") {
		return nil, fmt.Errorf("unknown suite %q: want one of %s, or a .jsonl suite file", name, strings.Join(Names(), ", "))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("suite: %w", err)
	}
	defer f.Close()
	items, err := ReadJSONL(f, name)
	if err != nil {
		return nil, err
	}
	return &Suite{Name: strings.TrimSuffix(path.Base(name), ".jsonl"), Items: items, Source: name}, nil
}

// decodeJSONL decodes one JSON object per non-blank line into T.
func decodeJSONL[T any](data []byte, file string) ([]T, error) {
	var out []T
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(encodeNonFinite(line), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// checkItems validates converted items, naming the file and row.
func checkItems(items []Item, file string) ([]Item, error) {
	for i := range items {
		if err := items[i].validate(); err != nil {
			return nil, fmt.Errorf("%s: row %d (%s): %w", file, i+1, items[i].ID, err)
		}
	}
	return items, nil
}

type cseRow struct {
	PromptID   json.RawMessage `json:"prompt_id"`
	Prompt     string          `json:"test_case_prompt"`
	Language   string          `json:"language"`
	CWE        string          `json:"cwe_identifier"`
	PatternID  string          `json:"pattern_id"`
	Analyzer   string          `json:"analyzer"`
	Variant    string          `json:"variant"`
	OriginCode string          `json:"origin_code"`
}

func readCSE(data []byte, file string) ([]cseRow, error) {
	var rows []cseRow
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rows, nil
}

// loadCSE reads CyberSecEval's instruct or autocomplete file.
func loadCSE(data []byte, file string) ([]Item, error) {
	rows, err := readCSE(data, file)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		id := strings.Trim(string(r.PromptID), `"`)
		items[i] = Item{
			ID: fmt.Sprintf("%s/%s/%s", r.Variant, r.Language, id), Prompt: r.Prompt,
			Scorer: ScorerSecureCode, Language: r.Language,
			Meta: map[string]any{"cwe": r.CWE, "pattern_id": r.PatternID, "origin_analyzer": r.Analyzer},
		}
	}
	return checkItems(items, file)
}

func loadMITRE(data []byte, file string) ([]Item, error) {
	var rows []struct {
		System   string `json:"system_prompt"`
		User     string `json:"user_prompt"`
		Category string `json:"category"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		var msgs []Message
		if r.System != "" {
			msgs = append(msgs, Message{Role: "system", Content: r.System})
		}
		msgs = append(msgs, Message{Role: "user", Content: r.User})
		items[i] = Item{ID: fmt.Sprintf("mitre/%d", i), Messages: msgs, Scorer: ScorerMITRE,
			Meta: map[string]any{"category": r.Category}}
	}
	return checkItems(items, file)
}

func loadFRR(data []byte, file string) ([]Item, error) {
	var rows []struct {
		Prompt      string `json:"mutated_prompt"`
		IsMalicious bool   `json:"is_malicious"`
		AttackType  string `json:"attack_type"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		label := "safe"
		if r.IsMalicious {
			label = "unsafe"
		}
		items[i] = Item{ID: fmt.Sprintf("frr/%d", i), Prompt: r.Prompt, Scorer: ScorerRefusal, Label: label,
			Meta: map[string]any{"attack_type": r.AttackType}}
	}
	return checkItems(items, file)
}

func loadXSTest(data []byte, file string) ([]Item, error) {
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no rows", file)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, need := range []string{"id", "prompt", "type", "label"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s: no %q column in the header %v", file, need, recs[0])
		}
	}
	items := make([]Item, 0, len(recs)-1)
	for _, r := range recs[1:] {
		items = append(items, Item{ID: "xstest/" + r[col["id"]], Prompt: r[col["prompt"]], Scorer: ScorerRefusal,
			Label: r[col["label"]], Meta: map[string]any{"type": r[col["type"]]}})
	}
	return checkItems(items, file)
}

type plusRow struct {
	TaskID     string          `json:"task_id"`
	Prompt     string          `json:"prompt"`
	EntryPoint string          `json:"entry_point"`
	Canonical  string          `json:"canonical_solution"`
	BaseInput  json.RawMessage `json:"base_input"`
	PlusInput  json.RawMessage `json:"plus_input"`
	Atol       float64         `json:"atol"`
	Assertion  string          `json:"assertion"`
}

// The instruction wording is ours; like EvalPlus's chat prompt it asks for
// a complete, self-contained program in one code block.
const codeInstruction = "Complete the following Python task. Reply with a self-contained Python program in one markdown code block that defines the function.\n\n```python\n%s\n```\n"

func loadHumanEvalPlus(data []byte, file string) ([]Item, error) {
	rows, err := decodeJSONL[plusRow](data, file)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		cmp := ""
		if r.EntryPoint == "find_zero" {
			cmp = "poly"
		}
		items[i] = Item{ID: r.TaskID, Prompt: fmt.Sprintf(codeInstruction, strings.TrimSpace(r.Prompt)), Scorer: ScorerEvalPlus,
			EntryPoint: r.EntryPoint, Canonical: r.Prompt + r.Canonical, BaseInputs: r.BaseInput, PlusInputs: r.PlusInput,
			Atol: r.Atol, Compare: cmp, Meta: map[string]any{"code_prompt": r.Prompt}}
	}
	return checkItems(items, file)
}

// EvalPlus compares these MBPP+ functions' outputs as sets, or only by
// truthiness (the task admits several right answers).
var (
	mbppSetCompare    = []string{"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum", "intersection_array", "find_dissimilar", "Diff"}
	mbppTruthyCompare = []string{"check_str", "text_match_three", "text_starta_endb"}
)

func loadMBPPPlus(data []byte, file string) ([]Item, error) {
	rows, err := decodeJSONL[plusRow](data, file)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		num, err := strconv.Atoi(strings.TrimPrefix(r.TaskID, "Mbpp/"))
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: task_id %q is not Mbpp/<number>", file, i+1, r.TaskID)
		}
		// Mbpp/793 has {} for no plus inputs.
		if string(bytes.TrimSpace(r.PlusInput)) == "{}" {
			r.PlusInput = nil
		}
		cmp := ""
		switch {
		case slices.Contains(mbppSetCompare, r.EntryPoint):
			cmp = "set"
		case slices.Contains(mbppTruthyCompare, r.EntryPoint):
			cmp = "truthy"
		}
		// The task text plus its first assertion, which names the function
		// and shows the call, as EvalPlus's MBPP+ prompt does.
		task := strings.TrimSpace(strings.Trim(strings.TrimSpace(r.Prompt), `'"`))
		if first := firstLine(r.Assertion); first != "" {
			task += "\n" + first
		}
		code := "\"\"\"\n" + task + "\n\"\"\"\n"
		items[i] = Item{ID: r.TaskID, Prompt: fmt.Sprintf(codeInstruction, strings.TrimSpace(code)), Scorer: ScorerEvalPlus,
			EntryPoint: r.EntryPoint, Canonical: r.Canonical, BaseInputs: r.BaseInput, PlusInputs: r.PlusInput,
			Atol: r.Atol, Compare: cmp, Decode: mbppDecode(num), Meta: map[string]any{"code_prompt": code}}
	}
	return checkItems(items, file)
}

// inputDecodings are the argument rebuilds evalplus_driver.py knows.
var inputDecodings = []string{"tuple-args", "tuple-lists", "tuple-list-first", "tuple-second", "tuple-first",
	"set-list-first", "float-complex", "complex", "tuple-lists-args", "tuple-mixed-first", "dict-tuple-values", "tuples-deep"}

// mbppDecode is how EvalPlus rebuilds the JSON inputs of MBPP+ tasks whose
// functions take tuples, sets or complex numbers, by task number.
func mbppDecode(num int) string {
	groups := map[string][]int{
		"tuple-args":        {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744, 809},
		"tuple-lists":       {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780},
		"tuple-list-first":  {75, 413, 444, 753},
		"tuple-second":      {106, 750},
		"set-list-first":    {115},
		"float-complex":     {124},
		"tuple-first":       {250, 405, 446, 617, 720, 763, 808, 307},
		"tuple-lists-args":  {259, 401, 445},
		"tuple-mixed-first": {278},
		"dict-tuple-values": {722},
		"complex":           {252},
		"tuples-deep":       {580, 615, 791},
	}
	for name, nums := range groups {
		if slices.Contains(nums, num) {
			return name
		}
	}
	return ""
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// encodeNonFinite rewrites the bare NaN, Infinity and -Infinity that
// Python's json module writes (EvalPlus inputs have them) as
// {"__float__": "nan" | "inf" | "-inf"}, valid JSON that the sandboxed
// harness turns back into floats. Text inside strings is left alone.
func encodeNonFinite(b []byte) []byte {
	if !bytes.Contains(b, []byte("NaN")) && !bytes.Contains(b, []byte("Infinity")) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out = append(out, c)
			switch c {
			case '\\':
				if i+1 < len(b) {
					i++
					out = append(out, b[i])
				}
			case '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			out = append(out, c)
		case bytes.HasPrefix(b[i:], []byte("-Infinity")):
			out = append(out, `{"__float__":"-inf"}`...)
			i += len("-Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("Infinity")):
			out = append(out, `{"__float__":"inf"}`...)
			i += len("Infinity") - 1
		case bytes.HasPrefix(b[i:], []byte("NaN")):
			out = append(out, `{"__float__":"nan"}`...)
			i += len("NaN") - 1
		default:
			out = append(out, c)
		}
	}
	return out
}
