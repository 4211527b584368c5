package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"purpcode/internal/testref"
	"purpcode/recipe"
)

// usageLine is how an example config says which command reads it.
var usageLine = regexp.MustCompile(`(?m)^# purpcode (\S+) --config configs/(\S+\.yaml)$`)

// TestExampleConfigsLoad loads every configs/*.yaml through the decoder of
// the command that reads it (and the command's validation where it has
// one), so no example rots when a key is renamed or removed; and checks
// that every key of an example is commented.
func TestExampleConfigsLoad(t *testing.T) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(root, "configs", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			cmd := "run" // demo.yaml: `make run` reads it
			if m := usageLine.FindStringSubmatch(string(src)); m != nil {
				if m[2] != name {
					t.Errorf("usage line names configs/%s", m[2])
				}
				cmd = m[1]
			} else if name != "demo.yaml" {
				t.Fatalf("no line %q saying which command reads it", "# purpcode CMD --config configs/"+name)
			}
			switch cmd {
			case "run":
				_, err = recipe.Load(p)
			case "sft":
				_, _, err = sftConfig([]string{"--config", p}, &bytes.Buffer{})
			case "rl":
				_, _, err = rlConfig([]string{"--config", p}, &bytes.Buffer{})
			default:
				c, ok := findCommand(commandTable(), cmd)
				if !ok {
					t.Fatalf("unknown command %q", cmd)
				}
				fs, ferr := commandFlags(c)
				if ferr != nil {
					t.Fatal(ferr)
				}
				err = applyFlagConfig(fs, p)
			}
			if err != nil {
				t.Errorf("%s: %v", cmd, err)
			}
			if name != "demo.yaml" { // the recipe's file, commented by section
				checkCommented(t, string(src))
			}
		})
	}
}

// checkCommented wants a comment on every top-level key line (or on the
// comment-only line that continues it).
func checkCommented(t *testing.T, src string) {
	t.Helper()
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, " ") {
			continue
		}
		if strings.Contains(l, " # ") {
			continue
		}
		if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "# ") && strings.HasPrefix(lines[i+1], " ") {
			continue
		}
		t.Errorf("line %d has no comment: %q", i+1, l)
	}
}
