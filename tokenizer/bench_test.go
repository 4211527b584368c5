package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. The benchmarks report
// throughput per CPU-second too, because on a shared 2-core machine wall
// time mostly measures the other tenants.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// codeCorpus concatenates Go sources of GOROOT until it has at least n
// bytes (real source code, available wherever the tests build).
func codeCorpus(tb testing.TB, n int) string {
	tb.Helper()
	root := filepath.Join(runtime.GOROOT(), "src", "net", "http")
	var files []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		b.Write(data)
		if b.Len() >= n {
			break
		}
	}
	if b.Len() < n {
		tb.Skipf("GOROOT sources give only %d bytes, want %d", b.Len(), n)
	}
	return b.String()[:n]
}

func BenchmarkEncodeCode(b *testing.B) {
	tk := loadQwen3(b)
	text := codeCorpus(b, 1<<20)
	b.SetBytes(int64(len(text)))
	ids := 0
	c0 := cpuTime()
	for b.Loop() {
		ids += len(tk.Encode(text))
	}
	cpu := (cpuTime() - c0).Seconds()
	b.ReportMetric(float64(ids)/b.Elapsed().Seconds(), "ids/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N*len(text))/1e6/cpu, "MB/cpu-s")
		b.ReportMetric(float64(ids)/cpu, "ids/cpu-s")
	}
}

func BenchmarkEncodeWithOffsetsCode(b *testing.B) {
	tk := loadQwen3(b)
	text := codeCorpus(b, 1<<20)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.EncodeWithOffsets(text)
	}
}

func BenchmarkDecodeCode(b *testing.B) {
	tk := loadQwen3(b)
	ids := tk.Encode(codeCorpus(b, 1<<20))
	b.SetBytes(1 << 20)
	for b.Loop() {
		tk.Decode(ids, false)
	}
}

func BenchmarkLoadQwen3(b *testing.B) {
	dir := filepath.Join(refsDir(b), "tokenizer", "qwen3")
	for b.Loop() {
		if _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// pythonCorpus concatenates the HumanEval prompts and canonical solutions
// and the MBPP reference solutions from ../shared/refs/bench.
func pythonCorpus(b *testing.B) string {
	refs := refsDir(b)
	var sb strings.Builder
	read := func(path string, gz bool, fields ...string) {
		f, err := os.Open(path)
		if err != nil {
			b.Skipf("benchmark corpus: %v", err)
		}
		defer f.Close()
		var r io.Reader = f
		if gz {
			zr, err := gzip.NewReader(f)
			if err != nil {
				b.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var row map[string]any
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				b.Fatalf("%s: %v", path, err)
			}
			for _, k := range fields {
				if s, ok := row[k].(string); ok {
					sb.WriteString(s)
					sb.WriteString("\n")
				}
			}
		}
	}
	read(filepath.Join(refs, "bench", "humaneval", "HumanEval.jsonl.gz"), true, "prompt", "canonical_solution")
	read(filepath.Join(refs, "bench", "mbpp", "mbpp.jsonl"), false, "code")
	return sb.String()
}

func BenchmarkEncodePython(b *testing.B) {
	tk := loadQwen3(b)
	text := pythonCorpus(b)
	b.SetBytes(int64(len(text)))
	ids := 0
	c0 := cpuTime()
	for b.Loop() {
		ids += len(tk.Encode(text))
	}
	if cpu := (cpuTime() - c0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(b.N*len(text))/1e6/cpu, "MB/cpu-s")
		b.ReportMetric(float64(ids)/cpu, "ids/cpu-s")
	}
}

// BenchmarkEncodeCodeNoCache measures the BPE itself, as on text whose
// words were never seen before.
func BenchmarkEncodeCodeNoCache(b *testing.B) {
	dir := filepath.Join(refsDir(b), "tokenizer", "qwen3")
	tk, err := Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	tk.cache = nil
	text := codeCorpus(b, 1<<20)
	b.SetBytes(int64(len(text)))
	c0 := cpuTime()
	for b.Loop() {
		tk.Encode(text)
	}
	if cpu := (cpuTime() - c0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(b.N*len(text))/1e6/cpu, "MB/cpu-s")
	}
}
