package yamlconf

import (
	"strings"
	"testing"
)

type inner struct {
	K    int     `yaml:"k"`
	Temp float64 `yaml:"temperature"`
}

type cfg struct {
	Model string   `yaml:"model"`
	Data  []string `yaml:"data"`
	LR    float64  `yaml:"lr"`
	Steps int      `yaml:"steps"`
	Seed  uint64   `yaml:"seed"`
	Pack  bool     `yaml:"pack"`
	Sub   inner    `yaml:"sub"`
	skip  int
}

func TestDecodeKeepsDefaultsAndAcceptsStringOrList(t *testing.T) {
	for _, tc := range []struct {
		src  string
		data []string
	}{
		{"data: a.jsonl\n", []string{"a.jsonl"}},
		{"data: [a.jsonl, b.jsonl]\n", []string{"a.jsonl", "b.jsonl"}},
		{"data:\n  - a.jsonl\n  - b.jsonl\n", []string{"a.jsonl", "b.jsonl"}},
	} {
		c := cfg{LR: 0.5, Steps: 3, Sub: inner{K: 8}}
		if err := Decode("x.yaml", []byte(tc.src+"steps: 7\nsub:\n  temperature: 0.8\n"), &c); err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if strings.Join(c.Data, ",") != strings.Join(tc.data, ",") || c.LR != 0.5 || c.Steps != 7 || c.Sub.K != 8 || c.Sub.Temp != 0.8 {
			t.Errorf("%q: got %+v", tc.src, c)
		}
	}
}

func TestDecodeErrorsNameKeysAsWritten(t *testing.T) {
	src := "model: m\nlearning_rate: 1e-5\nsteps: ten\nseed: -1\nsub:\n  kk: 3\n  temperature: [1]\ndata: [a, {b: 1}]\npack: 3\nmodel: again\nsteps_: 4\n"
	var c cfg
	err := Decode("configs/x.yaml", []byte(src), &c)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`configs/x.yaml: line 2: unknown key "learning_rate" (did you mean "lr"?)`,
		`configs/x.yaml: line 3: steps: want an integer, got "ten"`,
		`configs/x.yaml: line 4: seed: want an integer >= 0, got "-1"`,
		`configs/x.yaml: line 6: unknown key "sub.kk" (did you mean "sub.k"?)`,
		`configs/x.yaml: line 7: sub.temperature: want a number, got a list`,
		`configs/x.yaml: line 8: data[1]: want a string, got a block of keys`,
		`configs/x.yaml: line 9: pack: want true or false, got "3"`,
		`configs/x.yaml: line 10: key "model" given twice (first on line 1)`,
		`configs/x.yaml: line 11: unknown key "steps_" (did you mean "steps"?)`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "yamlconf.cfg") || strings.Contains(err.Error(), "float64") {
		t.Errorf("error names Go types: %v", err)
	}
}

func TestDecodeRejectsNonStringWhereStringWanted(t *testing.T) {
	var c cfg
	err := Decode("x.yaml", []byte("model: true\n"), &c)
	if err == nil || !strings.Contains(err.Error(), `line 1: model: want a string, got "true"`) {
		t.Errorf("got %v", err)
	}
	if err := Decode("x.yaml", []byte("model: 123\n"), &c); err != nil || c.Model != "123" {
		t.Errorf("a number where a string is wanted is its text: %v %q", err, c.Model)
	}
}

func TestDecodeEmptyAndSyntaxError(t *testing.T) {
	c := cfg{Steps: 3}
	if err := Decode("x.yaml", []byte("# nothing\n"), &c); err != nil || c.Steps != 3 {
		t.Errorf("empty document: %v %+v", err, c)
	}
	err := Decode("x.yaml", []byte("steps: [1\n"), &c)
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml: ") || strings.Contains(err.Error(), "yaml: yaml") {
		t.Errorf("syntax error: %v", err)
	}
}

func TestEntries(t *testing.T) {
	es, err := Entries("x.yaml", []byte("k: 8\ndata: [a, b]\nprefix: \"## Analysis\\n\"\nempty:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[0].Key != "k" || es[0].Values[0] != "8" || !es[1].List || len(es[1].Values) != 2 ||
		es[2].Values[0] != "## Analysis\n" || es[3].Values != nil || es[3].Line != 4 {
		t.Errorf("got %+v", es)
	}
	if _, err := Entries("x.yaml", []byte("a:\n  b: 1\n")); err == nil || !strings.Contains(err.Error(), "line 2: a: want a value or a list") {
		t.Errorf("nested block: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"lr", "seq_len", "micro_batch", "grad_accum", "epochs", "warmup", "clip"}
	for in, want := range map[string]string{
		"learning_rate": "lr", "seq-len": "seq_len", "seqlen": "seq_len", "gradient_accumulation_steps": "grad_accum",
		"num_train_epochs": "epochs", "warmpu": "warmup", "max_grad_norm": "clip", "tokenizer": "", "rnu": "",
	} {
		if got := Suggest(in, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSuggestSwappedLetters(t *testing.T) {
	if got := Suggest("rnu", []string{"rl", "run", "sft"}); got != "run" {
		t.Errorf("Suggest(rnu) = %q, want run", got)
	}
}
