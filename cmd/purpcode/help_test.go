package main

import (
	"bytes"
	"flag"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"purpcode/internal/yamlconf"
)

// TestEveryCommandHelp checks each command's --help: stdout, exit 0, the
// one-line summary on top, every flag listed, and for commands with a
// config file every key of the config struct listed with its default.
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commandTable() {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := mainExit([]string{c.name, "--help"}, &out, &errb); code != 0 || errb.Len() > 0 {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			help := out.String()
			if first := strings.SplitN(help, "\n", 2)[0]; first != "purpcode "+c.name+": "+c.summary || c.summary == "" {
				t.Errorf("first line %q, want the command's one-line summary", first)
			}
			if !strings.Contains(help, "\nusage: purpcode "+c.name+" ") {
				t.Errorf("no usage line:\n%s", help)
			}
			fs, err := commandFlags(c)
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]bool
			if c.config != nil {
				keys = topKeys(reflect.TypeOf(c.config()))
				checkConfigBlock(t, help, c.config())
			}
			fs.VisitAll(func(f *flag.Flag) {
				if keys[strings.ReplaceAll(f.Name, "-", "_")] {
					return // listed as a config key
				}
				line := flagLine(help, f.Name)
				if line == "" {
					t.Errorf("flag --%s not listed", f.Name)
					return
				}
				if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(line, "(default "+f.DefValue+")") {
					t.Errorf("flag --%s: default %q not shown in %q", f.Name, f.DefValue, line)
				}
			})
		})
	}
}

// flagLine returns the help text of flag name: its line and a wrapped
// continuation line.
func flagLine(help, name string) string {
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "--"+name {
			if i+1 < len(lines) && len(f) <= 2 {
				return l + lines[i+1]
			}
			return l
		}
	}
	return ""
}

// checkConfigBlock parses the YAML block after the "config keys" header:
// its keys must be exactly the struct's (nested ones too), and decoding
// it into a zero config must give the defaults.
func checkConfigBlock(t *testing.T, help string, def any) {
	t.Helper()
	_, block, ok := strings.Cut(help, "\nconfig keys")
	if !ok {
		t.Fatalf("no config keys section:\n%s", help)
	}
	_, block, _ = strings.Cut(block, ".\n\n")
	if block == "" {
		t.Fatalf("config block not separated from its header by a blank line:\n%s", help)
	}
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(block), &node); err != nil {
		t.Fatalf("config block is not YAML: %v\n%s", err, block)
	}
	got := yamlKeys(node.Content[0], "")
	want := structKeys(reflect.TypeOf(def), "")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("listed keys\n%v\nwant the config struct's\n%v", got, want)
	}
	zero := reflect.New(reflect.TypeOf(def))
	if err := yamlconf.Decode("help", []byte(block), zero.Interface()); err != nil {
		t.Fatalf("config block does not decode: %v", err)
	}
	if !reflect.DeepEqual(zero.Elem().Interface(), def) {
		t.Errorf("defaults listed\n%+v\nwant\n%+v", zero.Elem().Interface(), def)
	}
}

func yamlKeys(n *yaml.Node, prefix string) []string {
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := prefix+n.Content[i].Value, n.Content[i+1]
		if v.Kind == yaml.MappingNode {
			out = append(out, yamlKeys(v, k+".")...)
			continue
		}
		out = append(out, k)
	}
	return out
}

func structKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		k, ok := yamlconf.KeyOf(t.Field(i))
		if !ok {
			continue
		}
		if t.Field(i).Type.Kind() == reflect.Struct {
			out = append(out, structKeys(t.Field(i).Type, prefix+k+".")...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

// TestUnknownFlagIsOneLinePlusHint: the error and one line pointing at
// --help, on stderr, exit 2, for every command.
func TestUnknownFlagIsOneLinePlusHint(t *testing.T) {
	for _, c := range commandTable() {
		var out, errb bytes.Buffer
		code := mainExit([]string{c.name, "--no-such-flag"}, &out, &errb)
		want := "purpcode " + c.name + ": unknown flag --no-such-flag\nrun 'purpcode " + c.name + " --help' for usage\n"
		if code != 2 || out.Len() > 0 || errb.String() != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.name, code, out.String(), errb.String(), want)
		}
	}
	var out, errb bytes.Buffer
	mainExit([]string{"sft", "--learning-rate", "1"}, &out, &errb)
	if !strings.Contains(errb.String(), "unknown flag --learning-rate (did you mean --lr?)") {
		t.Errorf("no suggestion: %q", errb.String())
	}
	errb.Reset()
	if code := mainExit([]string{"sft", "--lr", "abc"}, &out, &errb); code != 2 ||
		errb.String() != "purpcode sft: --lr: want a number, got \"abc\"\nrun 'purpcode sft --help' for usage\n" {
		t.Errorf("bad flag value: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := mainExit([]string{"rnu"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "rnu" (did you mean "run"?)`) ||
		strings.Count(errb.String(), "\n") != 2 {
		t.Errorf("unknown command: exit %d, %q", code, errb.String())
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainExit([]string{"help"}, &out, &errb); code != 0 || errb.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	for _, c := range commandTable() {
		if !strings.Contains(out.String(), " "+c.name+" ") || !strings.Contains(out.String(), c.summary+"\n") {
			t.Errorf("help does not list %s with its summary", c.name)
		}
	}
	var sub bytes.Buffer
	mainExit([]string{"help", "rl"}, &sub, &errb)
	out.Reset()
	mainExit([]string{"rl", "-h"}, &out, &errb)
	if sub.String() != out.String() || !strings.HasPrefix(sub.String(), "purpcode rl: ") {
		t.Errorf("`help rl` differs from `rl -h`")
	}
	out.Reset()
	if code := mainExit(nil, &out, &errb); code != 2 || out.Len() > 0 {
		t.Errorf("no command: exit %d, stdout %q; want the list on stderr and exit 2", code, out.String())
	}
}
