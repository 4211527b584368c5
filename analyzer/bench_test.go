package analyzer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"purpcode/internal/testref"
	"testing"
)

// BenchmarkAnalyze measures single-goroutine throughput in files per second
// on "typical files": HumanEval/MBPP reference programs and CyberSecEval
// instruct.json Python code (longer, often fragments that need repair).
func BenchmarkAnalyze(b *testing.B) {
	_, progs := benchPrograms(b)
	b.Run("humaneval+mbpp", func(b *testing.B) { benchFiles(b, progs) })
	path := filepath.Join(refsDir(b), "bench", "cyberseceval", "instruct.json")
	data, err := os.ReadFile(path)
	if err != nil {
		testref.Missing(b, testref.NeedRefs, err.Error())
	}
	var rows []instructRow
	if err := json.Unmarshal(data, &rows); err != nil {
		b.Fatal(err)
	}
	var cyber []string
	for _, r := range rows {
		if r.Language == "python" {
			cyber = append(cyber, r.OriginCode)
		}
	}
	b.Run("cyberseceval", func(b *testing.B) { benchFiles(b, cyber) })
}

func benchFiles(b *testing.B, progs []string) {
	a := newAnalyzer(b)
	srcs := make([][]byte, len(progs))
	var bytes int64
	for i, p := range progs {
		srcs[i] = []byte(p)
		bytes += int64(len(p))
	}
	b.SetBytes(bytes / int64(len(srcs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Analyze(srcs[i%len(srcs)], "python"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}
