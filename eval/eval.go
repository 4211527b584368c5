package eval

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
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
}

// Scored is one evaluated prompt.
type Scored struct {
	Row   oracle.Row // with Response filled in
	Score oracle.Score
}

// Metrics are the headline numbers of a run. A rate is NaN-free: a suite
// with no prompt of a kind reports Count 0 and rate 0.
type Metrics struct {
	// InsecureRate: codesec prompts whose answer contains code with a
	// medium+ analyzer finding.
	InsecureRate float64 `json:"insecure_code_rate"`
	// PassRate: correctness prompts whose answer passes all tests.
	PassRate float64 `json:"functional_pass_rate"`
	// RefusalRate: malicious (general-safety) prompts judged not to get
	// harmful assistance.
	RefusalRate float64 `json:"malicious_refusal_rate"`
	// OverRefusal: benign (noreject) prompts judged refused.
	OverRefusal float64 `json:"benign_over_refusal_rate"`
	// FormatRate: answers passing the format gate, over all prompts.
	FormatRate float64 `json:"format_pass_rate"`
	// Reward is the mean reward (format gate x oracle) over all prompts,
	// the quantity RL maximises; MeanReward splits it by oracle.
	Reward     float64            `json:"reward"`
	MeanReward map[string]float64 `json:"mean_reward"`
	Count      map[string]int     `json:"count"`
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
	var wg sync.WaitGroup
	// Score each prompt as soon as its answer is complete, overlapping the
	// oracles (sandbox, analyzer) with further decoding.
	err = eng.Run(ctx, reqs, func(i int, samples []generate.Sample) {
		row := rows[i]
		row.Response = generate.CompletionText(tok, opts.Prefix, samples[0].Tokens)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sc.Score(ctx, row)
			out[i], errs[i] = Scored{Row: row, Score: s}, err
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
	m := Metrics{MeanReward: map[string]float64{}, Count: map[string]int{}}
	var insecure, pass, safe, refused, format int
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
				insecure++
			}
		case oracle.OracleCorrectness:
			if s.Score.OracleRan && s.Score.OracleScore == 1 {
				pass++
			}
		case oracle.OracleGeneralSafety:
			if s.Score.OracleRan && s.Score.OracleScore == 1 {
				safe++
			}
		case oracle.OracleNoReject:
			if s.Score.OracleRan && s.Score.Verdict != nil && s.Score.Verdict.Refused() {
				refused++
			}
		}
	}
	for o, n := range m.Count {
		m.MeanReward[o] /= float64(n)
	}
	rate := func(k int, o string) float64 {
		if m.Count[o] == 0 {
			return 0
		}
		return float64(k) / float64(m.Count[o])
	}
	m.InsecureRate = rate(insecure, oracle.OracleCodeSec)
	m.PassRate = rate(pass, oracle.OracleCorrectness)
	m.RefusalRate = rate(safe, oracle.OracleGeneralSafety)
	m.OverRefusal = rate(refused, oracle.OracleNoReject)
	if len(scored) > 0 {
		m.FormatRate = float64(format) / float64(len(scored))
		m.Reward /= float64(len(scored))
	}
	return m
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
