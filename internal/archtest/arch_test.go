package archtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
				// faulttest is the trainers' fault-test support: it exits
				// the process and joins groups with test timeouts.
				if dep == "train/faulttest" {
					t.Errorf("%s/%s imports train/faulttest: it is test support, for _test.go files", rel, name)
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

// deviceMemoryOwner reports whether package rel (relative to the module)
// may touch device memory: the backends and the kernels beneath them.
func deviceMemoryOwner(rel string) bool {
	return rel == "engine" || rel == "engine/cuda" || rel == "kernels" || strings.HasPrefix(rel, "kernels/")
}

// deviceMemoryRule holds what only deviceMemoryOwner packages may name:
// kernels.DevicePtr and kernels.Context, the Context methods that allocate
// and copy device memory, and engine.Tensor's Dev field. Objects come from
// the importer that also type-checks the packages, so a use is matched by
// identity: a Backend's Upload, an unrelated Dev field or a local type named
// Context are not uses.
type deviceMemoryRule struct {
	imp       types.Importer
	forbidden map[types.Object]string
}

func newDeviceMemoryRule(imp types.Importer) (*deviceMemoryRule, error) {
	r := &deviceMemoryRule{imp: imp, forbidden: map[types.Object]string{}}
	kern, err := imp.Import("purpcode/kernels")
	if err != nil {
		return nil, fmt.Errorf("import purpcode/kernels: %w", err)
	}
	eng, err := imp.Import("purpcode/engine")
	if err != nil {
		return nil, fmt.Errorf("import purpcode/engine: %w", err)
	}
	lookup := func(p *types.Package, name string) (types.Object, error) {
		o := p.Scope().Lookup(name)
		if o == nil {
			return nil, fmt.Errorf("%s has no %s: update deviceMemoryRule", p.Path(), name)
		}
		return o, nil
	}
	for _, name := range []string{"DevicePtr", "Context"} {
		o, err := lookup(kern, name)
		if err != nil {
			return nil, err
		}
		r.forbidden[o] = "kernels." + name
	}
	ctx, _ := lookup(kern, "Context")
	methods := types.NewMethodSet(types.NewPointer(ctx.Type()))
	for _, name := range []string{"MemAlloc", "CopyToDevice", "CopyFromDevice", "Upload", "Download"} {
		sel := methods.Lookup(kern, name)
		if sel == nil {
			return nil, fmt.Errorf("kernels.Context has no method %s: update deviceMemoryRule", name)
		}
		r.forbidden[sel.Obj()] = "(*kernels.Context)." + name
	}
	tensor, err := lookup(eng, "Tensor")
	if err != nil {
		return nil, err
	}
	dev, _, _ := types.LookupFieldOrMethod(tensor.Type(), true, eng, "Dev")
	if v, ok := dev.(*types.Var); !ok || !v.IsField() {
		return nil, fmt.Errorf("engine.Tensor has no field Dev: update deviceMemoryRule")
	}
	r.forbidden[dev] = "engine.Tensor.Dev"
	return r, nil
}

// check type-checks one package's files and returns "file:line: name" for
// every use of a forbidden object (selectors, qualified type names and
// struct literal keys alike: go/types records each in Uses).
func (r *deviceMemoryRule) check(fset *token.FileSet, path string, files []*ast.File) ([]string, error) {
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	if _, err := (&types.Config{Importer: r.imp}).Check(path, fset, files, info); err != nil {
		return nil, fmt.Errorf("type-check %s: %w", path, err)
	}
	var found []string
	for id, o := range info.Uses {
		if name, ok := r.forbidden[o]; ok {
			p := fset.Position(id.Pos())
			found = append(found, fmt.Sprintf("%s:%d: %s", filepath.Base(p.Filename), p.Line, name))
		}
	}
	slices.Sort(found)
	return found, nil
}

// listedPackage is the part of `go list -json` the rule reads.
type listedPackage struct {
	ImportPath, Dir, Export string
	GoFiles                 []string
	Error                   *struct{ Err string }
}

// goListExport lists the module's packages and their dependencies with
// their compiled export data (from the build cache: the packages are built
// for the tests anyway), so that go/types can import them.
func goListExport(t *testing.T, root string) []*listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-export", "-deps", "-json=ImportPath,Dir,Export,GoFiles,Error", "./...")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	var pkgs []*listedPackage
	for dec := json.NewDecoder(strings.NewReader(string(out))); ; {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// exportImporter imports packages from the export data go list named.
func exportImporter(fset *token.FileSet, pkgs []*listedPackage) types.Importer {
	export := map[string]string{}
	for _, p := range pkgs {
		export[p.ImportPath] = p.Export
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := export[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s (does it build?)", path)
		}
		return os.Open(f)
	})
}

// TestOnlyBackendsTouchDeviceMemory keeps issue 15's rule: device memory
// is the backends' business. Every other package computes through
// engine.Backend and sees tensors through their accessors, so a model, a
// trainer or the rollout engine runs unchanged on any device.
func TestOnlyBackendsTouchDeviceMemory(t *testing.T) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	listed := goListExport(t, root)
	fset := token.NewFileSet()
	rule, err := newDeviceMemoryRule(exportImporter(fset, listed))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range listed {
		rel, ok := strings.CutPrefix(p.ImportPath, "purpcode/")
		if !ok || deviceMemoryOwner(rel) {
			continue
		}
		if p.Error != nil {
			t.Errorf("%s: %s", rel, p.Error.Err)
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		found, err := rule.check(fset, p.ImportPath, files)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, f := range found {
			t.Errorf("%s/%s: only engine, engine/cuda and kernels touch device memory; compute through engine.Backend", rel, f)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no package checked: go list found none outside the backends")
	}
	t.Logf("%d packages outside the backends checked", checked)
}

// TestDeviceMemoryRuleCatches runs the rule on an in-memory package that
// breaks it in every way it knows, next to the legitimate calls that share
// the forbidden names (a Backend's Upload and Download, a local Context).
func TestDeviceMemoryRuleCatches(t *testing.T) {
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	rule, err := newDeviceMemoryRule(exportImporter(fset, goListExport(t, root)))
	if err != nil {
		t.Fatal(err)
	}
	const src = `package fake

import (
	"purpcode/engine"
	"purpcode/kernels"
)

type Context struct{ Dev int }

func bad(t *engine.Tensor, c *kernels.Context) {
	p, _ := c.MemAlloc(4)
	_ = c.CopyToDevice(p, nil)
	_ = c.CopyFromDevice(nil, t.Dev)
	q, _ := c.Upload([]float32{1})
	_ = c.Download([]float32{0}, q)
	_ = engine.Tensor{Dev: p}
	var d kernels.DevicePtr
	_ = d
}

func good(be engine.Backend, t *engine.Tensor, c Context) int {
	be.Upload(t, []float32{1})
	be.Download([]float32{0}, t)
	return c.Dev + t.Numel()
}
`
	f, err := parser.ParseFile(fset, "fake.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rule.check(fset, "purpcode/fake", []*ast.File{f})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fake.go:10: kernels.Context",
		"fake.go:11: (*kernels.Context).MemAlloc",
		"fake.go:12: (*kernels.Context).CopyToDevice",
		"fake.go:13: (*kernels.Context).CopyFromDevice",
		"fake.go:13: engine.Tensor.Dev",
		"fake.go:14: (*kernels.Context).Upload",
		"fake.go:15: (*kernels.Context).Download",
		"fake.go:16: engine.Tensor.Dev",
		"fake.go:17: kernels.DevicePtr",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rule found\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
