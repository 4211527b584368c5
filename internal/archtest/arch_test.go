package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"purpcode/internal/testref"
)

// layers is design.md's layout, top to bottom: a package may import
// packages of its own layer or of layers further down, never up.
var layers = []string{
	"cmd", "recipe", "eval", "serve", "redteam", "distill", "train", "oracle", "analyzer", "sandbox",
	"generate", "plan", "model", "tokenizer", "checkpoint", "dist", "engine", "kernels", "internal",
}

func layerOf(pkg string) int {
	top := strings.SplitN(pkg, "/", 2)[0]
	for i, l := range layers {
		if l == top {
			return i
		}
	}
	return -1
}

type pkgFiles struct {
	dir   string
	files map[string]*ast.File // non-test files
}

func loadPackages(t *testing.T) (string, map[string]*pkgFiles) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]*pkgFiles{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bench") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := pkgs[rel]
		if p == nil {
			p = &pkgFiles{dir: filepath.Dir(path), files: map[string]*ast.File{}}
			pkgs[rel] = p
		}
		p.files[filepath.Base(path)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, pkgs
}

func TestImportDirection(t *testing.T) {
	_, pkgs := loadPackages(t)
	for rel, p := range pkgs {
		from := layerOf(rel)
		if from < 0 {
			t.Errorf("package %s is outside design.md's layout (%v)", rel, layers)
			continue
		}
		for name, f := range p.files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path == "C" {
					if !strings.HasPrefix(rel, "kernels") {
						t.Errorf("%s/%s: import \"C\" outside kernels (the only cgo package)", rel, name)
					}
					continue
				}
				if !strings.HasPrefix(path, "purpcode/") {
					continue
				}
				dep := strings.TrimPrefix(path, "purpcode/")
				to := layerOf(dep)
				if to < from {
					t.Errorf("%s/%s imports %s: imports must point down the layout (%s is above %s)", rel, name, dep, layers[to], layers[from])
				}
				if strings.HasPrefix(rel, "model") && strings.HasPrefix(dep, "kernels") {
					t.Errorf("%s/%s imports kernels: the model computes through engine only", rel, name)
				}
				// testref reads the environment (see TestEnvReadOnlyInCommand),
				// so only tests and the test-output summary may import it.
				if dep == "internal/testref" && rel != "internal/testsummary" {
					t.Errorf("%s/%s imports internal/testref: it is test support, for _test.go files", rel, name)
				}
				if strings.HasPrefix(rel, "checkpoint") && (strings.HasPrefix(dep, "model") || strings.HasPrefix(dep, "train")) {
					t.Errorf("%s/%s imports %s: checkpoint knows nothing of models or training", rel, name, dep)
				}
			}
		}
	}
}

func TestEveryPackageHasDocGo(t *testing.T) {
	_, pkgs := loadPackages(t)
	for rel, p := range pkgs {
		f, ok := p.files["doc.go"]
		if !ok {
			t.Errorf("package %s has no doc.go", rel)
			continue
		}
		if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package ") && !strings.HasPrefix(f.Doc.Text(), "Command ") {
			t.Errorf("%s/doc.go has no package comment starting with \"Package\" or \"Command\"", rel)
		}
	}
}

// TestEnvReadOnlyInCommand keeps configuration explicit: only cmd/ reads
// environment variables; libraries take options.
func TestEnvReadOnlyInCommand(t *testing.T) {
	root, pkgs := loadPackages(t)
	for rel, p := range pkgs {
		// crashtest and testref are test plumbing imported only by tests:
		// crashtest's environment is how a test talks to the copy of
		// itself it re-executes; testref reads CI, the one switch that
		// reaches every test binary of `go test ./...` (a flag would make
		// binaries that do not define it refuse to start).
		if strings.HasPrefix(rel, "cmd") || rel == "internal/crashtest" || rel == "internal/testref" {
			continue
		}
		for name := range p.files {
			src, err := os.ReadFile(filepath.Join(root, rel, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range []string{"os.Getenv(", "os.LookupEnv(", "os.Environ("} {
				if strings.Contains(string(src), call) {
					t.Errorf("%s/%s calls %s: only cmd/purpcode reads the environment", rel, name, strings.TrimSuffix(call, "("))
				}
			}
		}
	}
}
