package oracle

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// AnalysisHeader is prefilled before the policy's response.
const AnalysisHeader = "## Analysis\n"

// AnswerHeader separates the analysis from the answer.
const AnswerHeader = "\n## Answer\n"

// FormatOptions configure the format gate. DefaultFormatOptions are
// PurpCode's.
type FormatOptions struct {
	// FullText means the text starts with "## Analysis\n" itself; false (the
	// default) means the text is the continuation of a prefilled header.
	FullText bool
	// MinAnalysis and MinAnswer are minimum lengths in characters.
	MinAnalysis, MinAnswer int
	// RepeatLen and RepeatCount: fail when a RepeatLen-character substring
	// occurs RepeatCount times or more.
	RepeatLen, RepeatCount int
}

// DefaultFormatOptions returns PurpCode's settings: analysis >= 16
// characters, answer >= 8, no 32-character substring 8 times.
func DefaultFormatOptions() FormatOptions {
	return FormatOptions{MinAnalysis: 16, MinAnswer: 8, RepeatLen: 32, RepeatCount: 8}
}

// FormatResult is the gate's decision.
type FormatResult struct {
	OK bool
	// Reason says why the gate failed (empty when OK).
	Reason string
	// Analysis and Answer are the two parts when the structure was found
	// (Answer is PurpCode's extraction: after the first "\n## Answer").
	Analysis, Answer string
}

// CheckFormat applies the format gate to a response.
func CheckFormat(text string, opt FormatOptions) FormatResult {
	body := strings.TrimSpace(text)
	if opt.FullText && !strings.HasPrefix(body, AnalysisHeader) {
		return FormatResult{Reason: "missing leading \"## Analysis\" header"}
	}
	body = strings.TrimSpace(strings.TrimPrefix(body, AnalysisHeader))

	// PurpCode's regex ^## Analysis\n(.{16,})\n## Answer\n(.{8,})$ matches
	// when some occurrence of the answer header has enough text on both
	// sides.
	first := strings.Index(body, AnswerHeader)
	if first < 0 {
		return FormatResult{Reason: "missing \"\\n## Answer\\n\" header"}
	}
	structured := false
	shortAnalysis := true
	for off := 0; ; {
		i := strings.Index(body[off:], AnswerHeader)
		if i < 0 {
			break
		}
		p := off + i
		okA := utf8.RuneCountInString(body[:p]) >= opt.MinAnalysis
		okB := utf8.RuneCountInString(body[p+len(AnswerHeader):]) >= opt.MinAnswer
		if okA {
			shortAnalysis = false
		}
		if okA && okB {
			structured = true
			break
		}
		off = p + 1
	}
	res := FormatResult{
		Analysis: strings.TrimSpace(body[:first]),
		Answer:   strings.TrimSpace(body[first+len(AnswerHeader)-1:]),
	}
	if !structured {
		if shortAnalysis {
			res.Reason = fmt.Sprintf("analysis shorter than %d characters", opt.MinAnalysis)
		} else {
			res.Reason = fmt.Sprintf("answer shorter than %d characters", opt.MinAnswer)
		}
		return res
	}
	if sub, n := FindRepetition(body, opt.RepeatLen, opt.RepeatCount); n > 0 {
		res.Reason = fmt.Sprintf("repetition: %q occurs %d times", sub, n)
		return res
	}
	if res.Answer == "" {
		res.Reason = "empty answer"
		return res
	}
	res.OK = true
	return res
}

// ExtractAnswer returns PurpCode's answer part of a response: the text after
// the first "\n## Answer", trimmed, or the whole trimmed text without the
// header.
func ExtractAnswer(text string) string {
	if i := strings.Index(text, "\n## Answer"); i >= 0 {
		return strings.TrimSpace(text[i+len("\n## Answer"):])
	}
	return strings.TrimSpace(text)
}

// FindRepetition looks for a substring of n characters (code points) that
// occurs at least k times, overlaps included. It returns the first such
// substring found and k, or "" and 0. It runs in expected linear time: a
// rolling hash over n-character windows, with every hash hit verified
// against the stored representatives so that collisions never count.
func FindRepetition(s string, n, k int) (string, int) {
	if n <= 0 || k <= 1 || len(s) < n {
		return "", 0
	}
	runes := []rune(s)
	if len(runes) < n {
		return "", 0
	}
	const base = 1000003
	var pow uint64 = 1 // base^(n-1)
	for i := 1; i < n; i++ {
		pow *= base
	}
	// Open-addressing table from window hash to the first representative
	// with that hash; representatives with equal hashes but different text
	// (collisions) are chained through next.
	type rep struct {
		hash         uint64
		start, count int32
		next         int32
	}
	windows := len(runes) - n + 1
	size := 1
	for size < 2*windows {
		size <<= 1
	}
	table := make([]int32, size) // rep index + 1; 0 = empty
	reps := make([]rep, 0, windows)
	equal := func(a, b int) bool {
		for j := 0; j < n; j++ {
			if runes[a+j] != runes[b+j] {
				return false
			}
		}
		return true
	}
	var h uint64
	for i := 0; i < n; i++ {
		h = h*base + uint64(runes[i])
	}
	for i := 0; ; i++ {
		slot := int((h ^ h>>29) * 0x9E3779B97F4A7C15 >> 32 & uint64(size-1))
		for table[slot] != 0 && reps[table[slot]-1].hash != h {
			slot = (slot + 1) & (size - 1)
		}
		found := false
		if table[slot] == 0 {
			reps = append(reps, rep{hash: h, start: int32(i), count: 1, next: -1})
			table[slot] = int32(len(reps))
		} else {
			r := table[slot] - 1
			for {
				if equal(int(reps[r].start), i) {
					reps[r].count++
					if int(reps[r].count) >= k {
						return string(runes[i : i+n]), int(reps[r].count)
					}
					found = true
					break
				}
				if reps[r].next < 0 {
					break
				}
				r = reps[r].next
			}
			if !found {
				reps = append(reps, rep{hash: h, start: int32(i), count: 1, next: -1})
				reps[r].next = int32(len(reps) - 1)
			}
		}
		if i+n >= len(runes) {
			break
		}
		h = (h-uint64(runes[i])*pow)*base + uint64(runes[i+n])
	}
	return "", 0
}
