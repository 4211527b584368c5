package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"purpcode/internal/yamlconf"
)

// listCommands prints the command list: `purpcode help`.
func listCommands(w io.Writer, cmds []command) {
	sorted := append([]command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	fmt.Fprint(w, "usage: purpcode <command> [flags]\n\ncommands:\n")
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nrun 'purpcode <command> --help' for the flags and config keys of one command\n")
}

// writeHelp prints one command's help: summary, synopsis, paragraph,
// flags and, for commands with a typed config file, every config key with
// its default as a YAML block that can be copied into a file.
func writeHelp(w io.Writer, c command, fs *flag.FlagSet, cmds []command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "purpcode %s: %s\n\nusage: purpcode %s %s\n", c.name, c.summary, c.name, orDefault(c.usage, "[flags]"))
	if c.about != "" {
		fmt.Fprintf(&b, "\n%s\n", c.about)
	}
	var keys map[string]bool
	var cfg reflect.Value
	if c.config != nil {
		cfg = reflect.ValueOf(c.config())
		keys = topKeys(cfg.Type())
	}
	// A flag that sets a config key of the same name is listed once, with
	// the keys.
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !keys[strings.ReplaceAll(f.Name, "-", "_")] {
			flags = append(flags, f)
		}
	})
	if len(flags) > 0 {
		b.WriteString("\nflags:\n")
		for _, f := range flags {
			writeFlag(&b, f)
		}
	}
	if c.config != nil {
		b.WriteString("\n" + configHeader(fs, cfg.Type()) + "\n\n")
		docs := flagDocs(fs, "")
		for _, s := range sectionFields(cfg.Type()) {
			if sc, ok := findCommand(cmds, s); ok {
				sfs, err := commandFlags(sc)
				if err != nil {
					return err
				}
				for k, v := range flagDocs(sfs, s+".") {
					docs[k] = v
				}
			}
		}
		writeKeys(&b, cfg, "", "  ", docs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// commandFlags returns a command's flags by asking it for help, which
// every command answers before doing any work.
func commandFlags(c command) (*flag.FlagSet, error) {
	var help helpRequest
	if err := c.run([]string{"--help"}, io.Discard, io.Discard); !errors.As(err, &help) {
		return nil, fmt.Errorf("%s --help: %v", c.name, err)
	}
	return help.fs, nil
}

// writeFlag prints one flag: name, value placeholder, usage and default.
func writeFlag(b *strings.Builder, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	head := "  --" + f.Name
	if name != "" {
		head += " " + strings.ToUpper(name)
	}
	if len(head) < 28 {
		head += strings.Repeat(" ", 28-len(head))
	} else {
		head += "\n" + strings.Repeat(" ", 28)
	}
	b.WriteString(head + usage)
	if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !(isBool && f.DefValue == "false") && f.DefValue != "" {
		fmt.Fprintf(b, " (default %s)", f.DefValue)
	}
	b.WriteString("\n")
}

// configHeader explains the YAML block: which keys are also flags.
func configHeader(fs *flag.FlagSet, t reflect.Type) string {
	var asFlags, notFlags []string
	for k := range topKeys(t) {
		if fs.Lookup(strings.ReplaceAll(k, "_", "-")) != nil {
			asFlags = append(asFlags, k)
		} else {
			notFlags = append(notFlags, k)
		}
	}
	sort.Strings(asFlags)
	sort.Strings(notFlags)
	const head = "config keys and their defaults (YAML for --config)."
	switch {
	case len(asFlags) == 0:
		return head
	case len(asFlags) < len(notFlags):
		for i, k := range asFlags {
			asFlags[i] = "--" + strings.ReplaceAll(k, "_", "-")
		}
		if len(asFlags) == 1 {
			return fmt.Sprintf("%s\nThe flag %s overrides its key.", head, asFlags[0])
		}
		return fmt.Sprintf("%s\nThe flags %s override their keys.", head, strings.Join(asFlags, ", "))
	}
	ex := asFlags[0]
	for _, k := range asFlags {
		if strings.Contains(k, "_") {
			ex = k
			break
		}
	}
	except := ""
	if len(notFlags) > 0 {
		except = " except " + strings.Join(notFlags, ", ")
	}
	return fmt.Sprintf("%s\nEach key%s is also a flag with dashes (%s is --%s);\na flag on the command line wins over the file.",
		head, except, ex, strings.ReplaceAll(ex, "_", "-"))
}

// flagDocs maps config keys (prefix + flag name with underscores) to the
// usage text of the flag of the same name.
func flagDocs(fs *flag.FlagSet, prefix string) map[string]string {
	docs := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		_, usage := flag.UnquoteUsage(f)
		docs[prefix+strings.ReplaceAll(f.Name, "-", "_")] = usage
	})
	return docs
}

// topKeys are the yaml keys of a config struct's own fields.
func topKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if k, ok := yamlconf.KeyOf(t.Field(i)); ok {
			keys[k] = true
		}
	}
	return keys
}

// sectionFields are the keys of a config struct whose values are blocks of
// keys (the recipe's stage sections).
func sectionFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if k, ok := yamlconf.KeyOf(t.Field(i)); ok && t.Field(i).Type.Kind() == reflect.Struct {
			out = append(out, k)
		}
	}
	return out
}

// writeKeys prints v's keys as YAML lines "key: default  # doc", nested
// blocks indented; a `doc:"..."` tag on a field wins over the flag usage.
func writeKeys(b *strings.Builder, v reflect.Value, prefix, indent string, docs map[string]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		k, ok := yamlconf.KeyOf(t.Field(i))
		if !ok {
			continue
		}
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		doc := t.Field(i).Tag.Get("doc")
		if doc == "" {
			doc = docs[full]
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			line := indent + k + ":"
			if doc != "" {
				line = padComment(line, doc)
			}
			b.WriteString(line + "\n")
			writeKeys(b, fv, full, indent+"  ", docs)
			continue
		}
		line := indent + k + ": " + yamlValue(fv)
		if doc != "" {
			line = padComment(line, doc)
		}
		b.WriteString(line + "\n")
	}
}

func padComment(line, doc string) string {
	if len(line) < 34 {
		line += strings.Repeat(" ", 34-len(line))
	} else {
		line += "  "
	}
	return line + "# " + strings.ReplaceAll(doc, "\n", " ")
}

// yamlValue writes a config value the way the decoder reads it back.
func yamlValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return yamlString(v.String())
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = yamlValue(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// yamlString quotes s when YAML would not read it back as the same plain
// string (Go's escapes are a subset of YAML's double-quoted ones).
func yamlString(s string) string {
	plain := s != "" && !strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`\n\t\\") && strings.TrimSpace(s) == s &&
		!strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "?")
	if plain {
		switch strings.ToLower(s) {
		case "true", "false", "null", "~", "yes", "no", "on", "off":
			plain = false
		}
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			plain = false
		}
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}
