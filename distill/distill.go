package distill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"

	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/oracle"
	"purpcode/tokenizer"
)

// Files written to Options.Out.
const (
	SFTFile     = "sft.jsonl"
	EasyFile    = "easy_ids.txt"
	SummaryFile = "summary.json"
	TableFile   = "summary.txt"
	SamplesFile = "samples.jsonl"
)

// Scorer computes the reward of a response row; *oracle.Scorer is one. It
// is called concurrently.
type Scorer interface {
	Score(ctx context.Context, row oracle.Row) (oracle.Score, error)
}

// Options configure Run; start from DefaultOptions.
type Options struct {
	// RuleContext returns the system prompt for a row: the safety policy
	// and the rule texts relevant to it. nil or "" samples the row's own
	// conversation (plain best-of-K with verification).
	RuleContext func(row oracle.Row) string
	// K is the number of samples per prompt.
	K int
	// Temperature and TopP control sampling (PurpCode: 0.8 and 1).
	Temperature, TopP float64
	// MaxNewTokens bounds each sample.
	MaxNewTokens int
	// MaxPromptLen skips prompts (rule context and prefix included) longer
	// than this many tokens; 0 means the model's max_position_embeddings
	// minus MaxNewTokens, so that every sample can reach its full length.
	MaxPromptLen int
	// Prefix is prefilled as the start of the answer ("## Analysis\n").
	Prefix string
	// MinReward is the reward a sample needs to be kept (verified).
	MinReward float64
	// EasyFrac: a prompt is easy when at least this share of its K
	// samples is verified.
	EasyFrac float64
	// Seed, with the row id and the sample index, determines every
	// sample.
	Seed uint64
	// Batch is the most sequences decoding at once (0: 32).
	Batch int
	// ScoreWorkers bounds concurrent Score calls (0: GOMAXPROCS).
	ScoreWorkers int
	// Chunk is the prompts generated per round; the samples of one round
	// are held in memory (0: 256).
	Chunk int
	// Out is the output directory (required). Existing files of the names
	// above are replaced; samples.jsonl is removed when WriteSamples is
	// false, so the directory always describes one run.
	Out string
	// WriteSamples writes samples.jsonl, every sample with its score.
	WriteSamples bool
	// EOS ends a sample; nil means the model config's EOS ids and the
	// tokenizer's (the CLI passes generate.StopTokens of the model dir).
	EOS []int
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// OnProgress is called on Run's goroutine as each prompt's samples are
	// complete, with the prompts done so far and the total to sample.
	OnProgress func(done, total int)
	// OnVerified, when set, is called from the scoring goroutines after
	// each sample is scored with the running counts of samples that reached
	// MinReward and of samples scored (for a live acceptance rate).
	OnVerified func(verified, scored int)
}

// DefaultOptions returns PurpCode's settings: 8 samples at temperature 0.8
// (top_p 1) of up to 512 new tokens, prefilled with "## Analysis\n", kept
// at reward >= 0.5, easy at >= 70% verified.
func DefaultOptions() Options {
	return Options{K: 8, Temperature: 0.8, TopP: 1, MaxNewTokens: 512, Prefix: oracle.AnalysisHeader, MinReward: 0.5, EasyFrac: 0.7}
}

// Validate reports every bad option at once.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.K < 1 {
		bad("k = %d: want at least 1 sample per prompt", o.K)
	}
	if math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0) || o.Temperature < 0 {
		bad("temperature = %v: want a finite number >= 0", o.Temperature)
	}
	if math.IsNaN(o.TopP) || o.TopP <= 0 || o.TopP > 1 {
		bad("top_p = %v: want a value in (0, 1]", o.TopP)
	}
	if o.MaxNewTokens < 1 {
		bad("max_new_tokens = %d: want at least 1", o.MaxNewTokens)
	}
	if o.MaxPromptLen < 0 {
		bad("max_prompt_len = %d: want >= 0 (0: from the model)", o.MaxPromptLen)
	}
	if math.IsNaN(o.MinReward) || o.MinReward < 0 || o.MinReward > 1 {
		bad("min_reward = %v: want a value in [0, 1]", o.MinReward)
	}
	if math.IsNaN(o.EasyFrac) || o.EasyFrac <= 0 || o.EasyFrac > 1 {
		bad("easy_frac = %v: want a value in (0, 1]", o.EasyFrac)
	}
	if o.Batch < 0 || o.ScoreWorkers < 0 || o.Chunk < 0 {
		bad("batch = %d, score_workers = %d, chunk = %d: want >= 0 (0: default)", o.Batch, o.ScoreWorkers, o.Chunk)
	}
	if o.Out == "" {
		bad("out: an output directory is required")
	}
	return errors.Join(errs...)
}

// Result is what Run did.
type Result struct {
	Summary Summary
	// EasyIDs are the easy prompts, in input order (also in easy_ids.txt).
	EasyIDs []string
	// Files are the paths written.
	Files []string
	// Tokens is the number of tokens sampled.
	Tokens int
	// GenerateS is the wall time of sampling (scoring overlapped) and
	// ScoreWaitS the scoring left after the last sample of each round.
	GenerateS, ScoreWaitS float64
}

// prompt is a row ready to sample.
type prompt struct {
	row oracle.Row
	ids []int
}

// sample is one scored answer.
type sample struct {
	text   string
	tokens int
	finish string
	score  oracle.Score
}

// Run distills rows (see the package comment) and writes the output files.
// It fails on invalid options, a prompt that does not render, or a Score
// error (a row that cannot be scored, not a bad answer).
func Run(ctx context.Context, m *qwen2.Model, tok *tokenizer.Tokenizer, scorer Scorer, rows []oracle.Row, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("distill: no prompt rows")
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(logw, "distill: "+format+"\n", args...) }
	maxPrompt := opts.MaxPromptLen
	if maxPrompt == 0 {
		maxPrompt = m.Cfg.MaxPositions - opts.MaxNewTokens
		if maxPrompt < 1 {
			return nil, fmt.Errorf("distill: max_new_tokens %d leaves no room for a prompt in max_position_embeddings %d", opts.MaxNewTokens, m.Cfg.MaxPositions)
		}
	}
	// A prompt needs room for at least one new token.
	maxPrompt = min(maxPrompt, m.Cfg.MaxPositions-1)
	eos := opts.EOS
	if eos == nil {
		eos = append(eos, m.Cfg.EOS...)
		if id, ok := tok.EOS(); ok && !slices.Contains(eos, id) {
			eos = append(eos, id)
		}
	}

	sum := newSummary(opts)
	sum.Settings.MaxPromptLen = maxPrompt
	var prompts []*prompt
	for _, row := range rows {
		system := ""
		if opts.RuleContext != nil {
			system = opts.RuleContext(row)
		}
		ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: toTokenizer(SamplingMessages(row, system)), Prefix: opts.Prefix})
		if err != nil {
			return nil, fmt.Errorf("distill: prompt %q: %w", row.ID, err)
		}
		if len(ids) > maxPrompt {
			sum.Skipped["too_long"]++
			logf("skipping %q: prompt of %d tokens exceeds %d", row.ID, len(ids), maxPrompt)
			continue
		}
		prompts = append(prompts, &prompt{row: row, ids: ids})
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("distill: every prompt is longer than %d tokens (max_prompt_len)", maxPrompt)
	}

	eng, err := generate.New(m, generate.Options{MaxBatch: opts.Batch, EOS: eos})
	if err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	defer eng.Close()
	out, err := createOutputs(opts.Out, opts.WriteSamples)
	if err != nil {
		return nil, err
	}
	defer out.abort()

	chunk := opts.Chunk
	if chunk == 0 {
		chunk = 256
	}
	res := &Result{}
	logf("%d prompts (%d skipped) x %d samples, temperature %g, up to %d new tokens", len(prompts), sum.Skipped["too_long"], opts.K, opts.Temperature, opts.MaxNewTokens)
	params := generate.SamplingParams{Temperature: opts.Temperature, TopP: opts.TopP, MaxNewTokens: opts.MaxNewTokens}
	done := 0
	var verified, scored atomic.Int64
	for start := 0; start < len(prompts); start += chunk {
		ps := prompts[start:min(start+chunk, len(prompts))]
		reqs := make([]generate.Request, len(ps))
		results := make([][]sample, len(ps))
		for i, p := range ps {
			// The row id seeds the samples, so a prompt draws the same
			// tokens whatever the chunking and batch composition.
			reqs[i] = generate.Request{ID: p.row.ID, Prompt: p.ids, N: opts.K, Params: params, Seed: opts.Seed}
			results[i] = make([]sample, opts.K)
		}
		t, err := eng.RunScored(ctx, reqs, opts.ScoreWorkers, func(i int, ss []generate.Sample) {
			for _, s := range ss {
				res.Tokens += len(s.Tokens)
			}
			done++
			if opts.OnProgress != nil {
				opts.OnProgress(done, len(prompts))
			}
		}, func(ctx context.Context, i int, s generate.Sample) error {
			row := ps[i].row
			row.Response = Postprocess(generate.CompletionText(tok, opts.Prefix, s.Tokens))
			sc, err := scorer.Score(ctx, row)
			if err != nil {
				return fmt.Errorf("score prompt %q sample %d: %w", row.ID, s.Index, err)
			}
			results[i][s.Index] = sample{text: row.Response, tokens: len(s.Tokens), finish: s.FinishReason, score: sc}
			if opts.OnVerified != nil {
				v := verified.Load()
				if sc.Reward >= opts.MinReward {
					v = verified.Add(1)
				}
				opts.OnVerified(int(v), int(scored.Add(1)))
			}
			return nil
		})
		res.GenerateS += t.Generate
		res.ScoreWaitS += t.ScoreWait
		if err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
		for i, p := range ps {
			if err := out.add(p.row, results[i], opts, sum, res); err != nil {
				return nil, err
			}
		}
		logf("%d/%d prompts: %d verified, %d easy (%.0f tokens/s)", done, len(prompts), sum.Total.Verified, sum.Total.Easy,
			float64(res.Tokens)/max(res.GenerateS, 1e-9))
	}
	sum.finish()
	if res.Files, err = out.commit(sum); err != nil {
		return nil, err
	}
	res.Summary = *sum
	logf("%d of %d prompts verified -> %s; %d easy -> %s", sum.Total.Verified, sum.Total.Prompts, SFTFile, sum.Total.Easy, EasyFile)
	return res, nil
}

// SamplingMessages is the conversation sampled for a row: the rule context
// as the system message, then the row's conversation. A row's own leading
// system message is merged into it (rule context, a blank line, the row's
// system text), so neither instruction is lost. A raw-prompt row becomes
// one user message. An empty system leaves the conversation unchanged.
func SamplingMessages(row oracle.Row, system string) []oracle.Message {
	msgs := Conversation(row)
	if system == "" {
		return msgs
	}
	if len(msgs) > 0 && msgs[0].Role == "system" {
		msgs[0].Content = system + "\n\n" + msgs[0].Content
		return msgs
	}
	return append([]oracle.Message{{Role: "system", Content: system}}, msgs...)
}

// Conversation is a row's original conversation (a copy): its messages, or
// its raw prompt as one user message.
func Conversation(row oracle.Row) []oracle.Message {
	if len(row.Messages) == 0 {
		return []oracle.Message{{Role: "user", Content: row.Prompt}}
	}
	return slices.Clone(row.Messages)
}

func toTokenizer(msgs []oracle.Message) []tokenizer.Message {
	out := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		out[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

// analysisTitle is the header line without its newline.
var analysisTitle = strings.TrimSuffix(oracle.AnalysisHeader, "\n")

// Postprocess brings a sample into PurpCode's "## Analysis\n...\n## Answer\n..."
// form as far as possible without inventing content: white space around it
// is trimmed, the "## Analysis\n" header is put in front when missing, and
// invalid UTF-8 (a byte-level token cut mid-character) becomes U+FFFD, so
// the text verified is exactly the text written. A sample without
// "\n## Answer\n" is left so: it fails the format gate.
func Postprocess(text string) string {
	t := strings.TrimFunc(strings.ToValidUTF8(text, "\uFFFD"), unicode.IsSpace)
	if t == analysisTitle || strings.HasPrefix(t, oracle.AnalysisHeader) {
		return t
	}
	return oracle.AnalysisHeader + t
}

// Candidate is one sample in the selection.
type Candidate struct {
	Index  int // sample index within the prompt
	Tokens int // sampled tokens
	Reward float64
}

// Best returns the position in cands of the best candidate with a reward of
// at least minReward, and how many qualify. The best has the highest
// reward, then the fewest tokens, then the lowest index; -1 when none
// qualifies.
func Best(cands []Candidate, minReward float64) (best, kept int) {
	best = -1
	for i, c := range cands {
		if c.Reward < minReward {
			continue
		}
		kept++
		if best < 0 {
			best = i
			continue
		}
		b := cands[best]
		if c.Reward > b.Reward || c.Reward == b.Reward && (c.Tokens < b.Tokens || c.Tokens == b.Tokens && c.Index < b.Index) {
			best = i
		}
	}
	return best, kept
}

// IsEasy reports whether kept verified samples of k make a prompt easy:
// kept >= easyFrac x k (with 8 samples and 0.7, at least 6).
func IsEasy(kept, k int, easyFrac float64) bool {
	return k > 0 && float64(kept) >= easyFrac*float64(k)-1e-9
}

// AcceptanceNote is the progress bar's note for OnVerified's counts.
func AcceptanceNote(verified, scored int) string {
	return fmt.Sprintf("%d/%d verified (%.0f%%)", verified, scored, 100*float64(verified)/float64(max(scored, 1)))
}
