package main

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"purpcode/internal/yamlconf"
)

// addFlagConfig registers --config on a command without a config struct:
// the file's keys are the command's flag names with underscores.
func addFlagConfig(fs *flag.FlagSet) *string {
	return fs.String("config", "", "YAML `file` of flag values: each key is a flag name with underscores "+
		"(max_new_tokens: 256, data: [a.jsonl]); a flag given on the command line wins")
}

// applyFlagConfig sets, from the YAML file at path, every flag the command
// line did not set. Errors name the file, line and key as written.
func applyFlagConfig(fs *flag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	entries, err := yamlconf.Entries(path, src)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var keys []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			keys = append(keys, strings.ReplaceAll(f.Name, "-", "_"))
		}
	})
	sort.Strings(keys)
	var errs yamlconf.Errors
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &yamlconf.Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	for _, e := range entries {
		name := strings.ReplaceAll(e.Key, "_", "-")
		f := fs.Lookup(name)
		if f == nil || name == "config" || strings.Contains(e.Key, "-") {
			msg := fmt.Sprintf("unknown key %q", e.Key)
			if s := yamlconf.Suggest(e.Key, keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			fail(e.Line, "%s", msg)
			continue
		}
		if given[name] {
			continue
		}
		_, isList := f.Value.(listFlag)
		typ := reflect.TypeOf("")
		if g, ok := f.Value.(flag.Getter); ok && g.Get() != nil {
			typ = reflect.TypeOf(g.Get())
		}
		if isList {
			typ = reflect.TypeOf([]string{})
		}
		switch {
		case e.List && !isList:
			fail(e.Line, "%s: want %s, got a list", e.Key, yamlconf.Describe(typ))
			continue
		case len(e.Values) == 0 && typ.Kind() != reflect.String && !isList:
			fail(e.Line, "%s: want %s, got nothing", e.Key, yamlconf.Describe(typ))
			continue
		case len(e.Values) == 0 && !isList:
			e.Values = []string{""}
		}
		for _, v := range e.Values {
			if err := f.Value.Set(v); err != nil {
				fail(e.Line, "%s: want %s, got %q", e.Key, yamlconf.Describe(typ), v)
				break
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
