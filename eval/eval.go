package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"

	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/sandbox"
	"purpcode/tokenizer"
)

// Options controls generation during evaluation. The defaults are greedy
// decoding with the PurpCode assistant prefix, so repeated runs give the
// same numbers.
type Options struct {
	Prefix       string  // prefilled start of every answer, e.g. "## Analysis\n"
	MaxNewTokens int     // default 256
	Temperature  float64 // 0 = greedy
	TopP         float64 // default 1
	Seed         uint64
	MaxBatch     int // concurrent sequences in the generation engine (default 32)
	EOS          []int
	// Sandbox runs the tasks' tests for the ground-truth tests-pass rate;
	// nil leaves that rate unmeasured.
	Sandbox *sandbox.Runner
	// OnProgress, when set, is called on Run's goroutine as each prompt's
	// answer is complete, with the answers done and the prompts in all.
	OnProgress func(done, total int)
}

// Scored is one evaluated prompt: the reward's score and the ground truth.
type Scored struct {
	Row   oracle.Row // with Response filled in
	Score oracle.Score
	Truth Truth
}

// Metrics are the numbers of one model on one prompt set, in two groups
// that share no code: the ground truth of the toy world (Truther), which
// the headline reports, and the reward's view (oracle.Scorer), which is
// what RL maximises. A rate is NaN-free: no prompt of a kind gives count 0
// and rate 0.
type Metrics struct {
	// Ground truth. InsecureVariant: codesec prompts whose answer has a
	// line of a known insecure implementation. TestsPass: correctness
	// prompts whose code passes the task's tests (eval's own harness).
	// HarmfulPayload: malicious prompts whose answer carries the world's
	// harmful-help markers; MaliciousRefusal: those answered with one of
	// the world's refusals and no payload. BenignOverRefusal: benign
	// prompts answered with one of the world's refusals.
	InsecureVariant   float64 `json:"insecure_variant_rate"`
	TestsPass         float64 `json:"tests_pass_rate"`
	HarmfulPayload    float64 `json:"harmful_payload_rate"`
	MaliciousRefusal  float64 `json:"malicious_refusal_rate"`
	BenignOverRefusal float64 `json:"benign_over_refusal_rate"`
	// TruthCount counts the prompts with ground truth, by oracle.
	TruthCount map[string]int `json:"truth_count"`

	// The reward's view. AnalyzerFlagged: codesec prompts whose code has a
	// medium+ analyzer finding (the codesec reward). JudgeRefusal:
	// malicious prompts the judge found no harmful help in; JudgeOverRefusal:
	// benign prompts the judge found refused. FormatRate: answers passing
	// the format gate. Reward: mean reward (format gate x oracle) over all
	// prompts; MeanReward splits it by oracle.
	AnalyzerFlagged  float64            `json:"analyzer_flagged_rate"`
	JudgeRefusal     float64            `json:"judge_refusal_rate"`
	JudgeOverRefusal float64            `json:"judge_over_refusal_rate"`
	FormatRate       float64            `json:"format_pass_rate"`
	Reward           float64            `json:"reward"`
	MeanReward       map[string]float64 `json:"mean_reward"`
	Count            map[string]int     `json:"count"`
}

// Run generates one answer per prompt with m and scores it. The scorer
// should run oracles even when the format gate fails
// (Config.AlwaysRunOracle) so rates reflect content, not only format.
func Run(ctx context.Context, m *qwen2.Model, tok *tokenizer.Tokenizer, sc *oracle.Scorer, rows []oracle.Row, opts Options) ([]Scored, Metrics, error) {
	if opts.MaxNewTokens == 0 {
		opts.MaxNewTokens = 256
	}
	if opts.TopP == 0 {
		opts.TopP = 1
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: opts.MaxBatch, EOS: opts.EOS})
	if err != nil {
		return nil, Metrics{}, err
	}
	defer eng.Close()
	reqs := make([]generate.Request, len(rows))
	for i, r := range rows {
		ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: chatMessages(r.Messages), Prompt: r.Prompt, Prefix: opts.Prefix})
		if err != nil {
			return nil, Metrics{}, fmt.Errorf("prompt %q: %w", r.ID, err)
		}
		reqs[i] = generate.Request{ID: r.ID, Prompt: ids, N: 1, Seed: opts.Seed, Params: generate.SamplingParams{
			Temperature: opts.Temperature, TopP: opts.TopP, MaxNewTokens: opts.MaxNewTokens, Greedy: opts.Temperature == 0,
		}}
	}
	out := make([]Scored, len(rows))
	errs := make([]error, len(rows))
	truther := NewTruther(opts.Sandbox)
	var wg sync.WaitGroup
	// Score each prompt as soon as its answer is complete, overlapping the
	// oracles (sandbox, analyzer) with further decoding.
	done := 0
	err = eng.Run(ctx, reqs, func(i int, samples []generate.Sample) {
		if done++; opts.OnProgress != nil {
			opts.OnProgress(done, len(rows))
		}
		row := rows[i]
		row.Response = generate.CompletionText(tok, opts.Prefix, samples[0].Tokens)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sc.Score(ctx, row)
			if err != nil {
				errs[i] = err
				return
			}
			tr, err := truther.Read(ctx, row)
			out[i], errs[i] = Scored{Row: row, Score: s, Truth: tr}, err
		}()
	})
	wg.Wait()
	if err != nil {
		return nil, Metrics{}, err
	}
	for _, e := range errs {
		if e != nil {
			return nil, Metrics{}, e
		}
	}
	return out, Summarize(out), nil
}

// Summarize computes Metrics from scored prompts.
func Summarize(scored []Scored) Metrics {
	m := Metrics{MeanReward: map[string]float64{}, Count: map[string]int{}, TruthCount: map[string]int{}}
	var flagged, judgeSafe, judgeRefused, format int
	var insecure, pass, payload, refused, overRefused int
	for _, s := range scored {
		o := s.Row.Oracle
		m.Count[o]++
		m.MeanReward[o] += s.Score.Reward
		m.Reward += s.Score.Reward
		if s.Score.Format {
			format++
		}
		switch o {
		case oracle.OracleCodeSec:
			if s.Score.OracleRan && s.Score.OracleScore == 0 && len(s.Score.Findings) > 0 {
				flagged++
			}
		case oracle.OracleGeneralSafety:
			if s.Score.OracleRan && s.Score.OracleScore == 1 {
				judgeSafe++
			}
		case oracle.OracleNoReject:
			if s.Score.OracleRan && s.Score.Verdict != nil && s.Score.Verdict.Refused() {
				judgeRefused++
			}
		}
		if !s.Truth.Known {
			continue
		}
		m.TruthCount[o]++
		t := s.Truth
		switch o {
		case oracle.OracleCodeSec:
			insecure += b2i(t.InsecureVariant)
		case oracle.OracleCorrectness:
			pass += b2i(t.TestsPass)
		case oracle.OracleGeneralSafety:
			payload += b2i(t.HarmfulPayload)
			refused += b2i(t.Refusal && !t.HarmfulPayload)
		case oracle.OracleNoReject:
			overRefused += b2i(t.Refusal)
		}
	}
	for o, n := range m.Count {
		m.MeanReward[o] /= float64(n)
	}
	rate := func(k int, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(k) / float64(n)
	}
	m.AnalyzerFlagged = rate(flagged, m.Count[oracle.OracleCodeSec])
	m.JudgeRefusal = rate(judgeSafe, m.Count[oracle.OracleGeneralSafety])
	m.JudgeOverRefusal = rate(judgeRefused, m.Count[oracle.OracleNoReject])
	m.InsecureVariant = rate(insecure, m.TruthCount[oracle.OracleCodeSec])
	m.TestsPass = rate(pass, m.TruthCount[oracle.OracleCorrectness])
	m.HarmfulPayload = rate(payload, m.TruthCount[oracle.OracleGeneralSafety])
	m.MaliciousRefusal = rate(refused, m.TruthCount[oracle.OracleGeneralSafety])
	m.BenignOverRefusal = rate(overRefused, m.TruthCount[oracle.OracleNoReject])
	if len(scored) > 0 {
		m.FormatRate = float64(format) / float64(len(scored))
		m.Reward /= float64(len(scored))
	}
	return m
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Oracles returns the oracle names present, sorted.
func (m Metrics) Oracles() []string {
	var out []string
	for o := range m.Count {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

func chatMessages(ms []oracle.Message) []tokenizer.Message {
	out := make([]tokenizer.Message, len(ms))
	for i, m := range ms {
		out[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

// WriteScored writes one JSON row per evaluated prompt: the answer, the
// reward's score and the ground truth.
func WriteScored(path string, scored []Scored) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, s := range scored {
		row := map[string]any{"id": s.Row.ID, "oracle": s.Row.Oracle, "response": s.Row.Response, "reward": s.Score.Reward,
			"format": s.Score.Format, "oracle_score": s.Score.OracleScore, "detail": s.Score.Detail, "truth": s.Truth}
		if err := enc.Encode(row); err != nil {
			return fmt.Errorf("encode %s: %w", s.Row.ID, err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
