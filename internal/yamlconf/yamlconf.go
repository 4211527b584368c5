package yamlconf

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file.
type Error struct {
	Path string // file name as given; "" when unknown
	Line int    // 1-based; 0 when the problem has no line
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems of one file, one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// err returns es as an error, or nil when empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// DecodeFile reads path and decodes it into dst (see Decode).
func DecodeFile(path string, dst any) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	return Decode(path, src, dst)
}

// Decode decodes YAML src into dst, a pointer to a struct whose yaml tags
// name the keys. Keys absent from src keep dst's values; an empty document
// changes nothing. path only labels the errors.
func Decode(path string, src []byte, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("yamlconf.Decode: want a pointer to a struct, got %T", dst))
	}
	root, err := parse(path, src)
	if err != nil || root == nil {
		return err
	}
	d := decoder{path: path}
	d.value(root, v.Elem(), "")
	return d.errs.err()
}

// parse returns the document's top node (nil for an empty document).
func parse(path string, src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		// yaml's syntax errors read "yaml: line 3: ..."; keep its text
		// without the package prefix.
		return nil, &Error{Path: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	return n, nil
}

type decoder struct {
	path string
	errs Errors
}

func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{Path: d.path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// value decodes n into v; key is the dotted key path naming v in errors.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.SetZero() // "key:" with nothing after it
		return
	}
	switch {
	case v.Kind() == reflect.Struct:
		d.mapping(n, v, key)
	case v.Kind() == reflect.Slice && n.Kind == yaml.ScalarNode:
		// One string where a list is expected: a list of one.
		elem := reflect.New(v.Type().Elem()).Elem()
		if d.scalar(n, elem, key) {
			v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), elem))
		}
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		v.SetZero() // "[]": no items, like a key left out of a fresh config
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			elem := reflect.New(v.Type().Elem()).Elem()
			if c.Kind != yaml.ScalarNode {
				d.fail(c, "%s[%d]: want %s, got %s", key, i, want(elem.Type()), got(c))
				ok = false
				continue
			}
			ok = d.scalar(c, elem, fmt.Sprintf("%s[%d]", key, i)) && ok
			out = reflect.Append(out, elem)
		}
		if ok {
			v.Set(out)
		}
	case n.Kind == yaml.ScalarNode:
		d.scalar(n, v, key)
	default:
		d.fail(n, "%s: want %s, got %s", key, want(v.Type()), got(n))
	}
}

// scalar decodes the scalar n into v and reports whether it could.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, key string) bool {
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
	default:
		d.fail(n, "%s: want %s, got %s", key, want(v.Type()), got(n))
		return false
	}
	if v.Kind() == reflect.String && n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" {
		// yaml would turn "true" or "~" into a string silently; a
		// boolean where a path is expected is a mistake worth naming.
		d.fail(n, "%s: want a string, got %s (quote it to mean the text)", key, got(n))
		return false
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.fail(n, "%s: want %s, got %s", key, want(v.Type()), got(n))
		return false
	}
	v.Set(tmp.Elem())
	return true
}

// mapping decodes the mapping n into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, "%s: want %s, got %s", strings.TrimSuffix(key, "."), want(v.Type()), got(n))
		return
	}
	fields := fieldIndex(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		full := join(key, name)
		if line, dup := seen[name]; dup {
			d.fail(k, "key %q given twice (first on line %d)", full, line)
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", full)
			if s := Suggest(name, sortedKeys(fields)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", join(key, s))
			}
			d.fail(k, "%s", msg)
			continue
		}
		d.value(val, v.Field(idx), full)
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// fieldIndex maps a struct's yaml keys to field indexes.
func fieldIndex(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if name, ok := KeyOf(t.Field(i)); ok {
			m[name] = i
		}
	}
	return m
}

// KeyOf is the yaml key of a struct field, as the yaml package names it:
// the tag's name, else the lower-cased field name; ok is false for
// unexported fields and `yaml:"-"`.
func KeyOf(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name := strings.Split(f.Tag.Get("yaml"), ",")[0]
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Describe says how a value of type t is written ("an integer", "a
// string or a list of strings"), for messages about flags set from files.
func Describe(t reflect.Type) string { return want(t) }

// want describes what a value of type t is written as.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer >= 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a string or a list of strings"
		}
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(want(t.Elem()), "a "), "an ")
	case reflect.Struct:
		return "a block of keys"
	}
	return "a value of another kind"
}

// got describes a node as the user wrote it.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a block of keys"
	}
	return fmt.Sprintf("%q", n.Value)
}

// Entry is one top-level key of a flat config file whose keys are command
// flags (see Entries).
type Entry struct {
	Key    string
	Line   int
	Values []string // one for a scalar, one per item for a list
	List   bool     // written as a list
}

// Entries reads a flat YAML mapping of scalars and lists of scalars, in
// file order, for configs that set command-line flags. An empty document
// has no entries.
func Entries(path string, src []byte) ([]Entry, error) {
	root, err := parse(path, src)
	if err != nil || root == nil {
		return nil, err
	}
	d := decoder{path: path}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "want a block of keys, got %s", got(root))
		return nil, d.errs
	}
	var out []Entry
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		for v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, "key %q given twice (first on line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		e := Entry{Key: k.Value, Line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				e.Values = []string{v.Value}
			}
		case yaml.SequenceNode:
			e.List = true
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					d.fail(c, "%s: want a list of plain values, got %s inside it", k.Value, got(c))
					continue
				}
				e.Values = append(e.Values, c.Value)
			}
		default:
			d.fail(v, "%s: want a value or a list, got %s", k.Value, got(v))
			continue
		}
		out = append(out, e)
	}
	return out, d.errs.err()
}

// aliases are the names other trainers (HF Trainer, axolotl, verl) give
// to our keys; a user coming from them gets pointed at ours.
var aliases = map[string][]string{
	"learning_rate": {"lr"}, "optim.lr": {"lr"},
	"num_epochs": {"epochs"}, "num_train_epochs": {"epochs"}, "total_epochs": {"epochs"},
	"sequence_len": {"seq_len"}, "max_seq_length": {"seq_len"}, "seq_length": {"seq_len"}, "max_length": {"seq_len"}, "cutoff_len": {"seq_len"},
	"micro_batch_size": {"micro_batch"}, "per_device_train_batch_size": {"micro_batch"}, "batch_size": {"micro_batch", "batch"},
	"gradient_accumulation_steps": {"grad_accum"},
	"warmup_steps":                {"warmup"},
	"max_grad_norm":               {"clip"}, "grad_clip": {"clip"}, "clip_grad": {"clip"},
	"lr_scheduler": {"schedule"}, "lr_scheduler_type": {"schedule"},
	"output_dir": {"out"}, "output": {"out"},
	"model_name_or_path": {"model", "base_model"}, "base_model": {"model"}, "model_path": {"model", "base_model"},
	"datasets": {"data"}, "train_files": {"data"}, "dataset": {"data"},
	"sample_packing": {"pack"}, "packing": {"pack"},
	"save_steps": {"save_every"}, "save_freq": {"save_every"}, "save_total_limit": {"keep"},
	"eval_steps": {"eval_every"}, "test_freq": {"eval_every"},
	"kl_loss_coef": {"kl_coef"}, "kl_coeff": {"kl_coef"}, "entropy_coeff": {"entropy_coef"},
	"n": {"group_size", "k"}, "rollout_n": {"group_size"}, "num_generations": {"group_size"},
	"sample_per_prompt": {"k"}, "samples_per_prompt": {"k"},
	"train_batch_size":  {"prompts_per_step"},
	"max_prompt_length": {"max_prompt_len"}, "max_response_length": {"max_response_len"},
	"max_completion_length": {"max_response_len", "max_new_tokens"}, "max_tokens": {"max_new_tokens"},
	"clip_ratio_low": {"clip_low"}, "clip_ratio_high": {"clip_high"},
	"roles_to_train": {"train_on"}, "optim": {"optimizer"},
	"adam_beta1": {"beta1"}, "adam_beta2": {"beta2"}, "adam_epsilon": {"eps"},
}

// Suggest returns the known key a mistyped key most likely meant, or "".
// It knows other trainers' names for our keys, dashes for underscores, and
// small typos.
func Suggest(key string, known []string) string {
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if isKnown[norm] {
		return norm
	}
	for _, a := range aliases[norm] {
		if isKnown[a] {
			return a
		}
	}
	// At most a third of the key (and at least one letter) may differ;
	// the first of equally close keys wins, so the answer is stable.
	best, bestD := "", max(1, len(norm)/3)+1
	for _, k := range known {
		if d := editDistance(norm, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance of two ASCII keys:
// insertions, deletions, substitutions and swaps of neighbours ("rnu" for
// "run") cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
