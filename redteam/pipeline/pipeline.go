package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"purpcode/analyzer"
	"purpcode/redteam"
	"purpcode/redteam/dedup"
)

// Stage names.
const (
	StageRule2Code  = "rule2code"
	StageVul2Prompt = "vul2prompt"
	StageMalicious  = "malicious"
	StageBenign     = "benign"
)

// Output files, relative to Config.Out.
const (
	FilePrompts  = "prompts.jsonl"
	FileSeeds    = "seeds.jsonl"
	FileDropped  = "dropped.jsonl"
	FileManifest = "manifest.json"
	dirWork      = "work"
)

// Config is one pipeline run.
type Config struct {
	// Out is the output directory.
	Out       string
	Generator Generator
	// Analyzer verifies Rule2Code snippets; the caller owns it.
	Analyzer *analyzer.Analyzer
	Rules    []Rule
	// Malicious and Benign are the seed requests.
	Malicious, Benign []Seed
	// Eval holds the evaluation prompts per suite, for decontamination.
	Eval map[string][]string

	SamplesPerRule     int      // Rule2Code generations per rule (default 4)
	PromptsPerStrategy int      // Vul2Prompt generations per seed and strategy (default 1)
	Strategies         []string // default Strategies()
	Transforms         []string // default redteam.TransformKinds()
	Sampling           Sampling // Seed is the run seed; MaxTokens default 512
	Concurrency        int      // requests in flight (default 8)
	Dedup              dedup.Options
	Near               dedup.Options // MinHash decontamination (default dedup.NearOptions())

	// Progress, when set, is called after every finished item of a
	// generator stage (and once at a stage's start with the resumed count).
	Progress func(stage string, done, total, accepted int)
}

func (c *Config) defaults() error {
	if c.Out == "" || c.Generator == nil || c.Analyzer == nil {
		return errors.New("redteam: Out, Generator and Analyzer are required")
	}
	if c.SamplesPerRule <= 0 {
		c.SamplesPerRule = 4
	}
	if c.PromptsPerStrategy <= 0 {
		c.PromptsPerStrategy = 1
	}
	if len(c.Strategies) == 0 {
		c.Strategies = Strategies()
	}
	for _, s := range c.Strategies {
		if !slices.Contains(Strategies(), s) {
			return fmt.Errorf("redteam: unknown strategy %q (want %s)", s, strings.Join(Strategies(), ", "))
		}
	}
	if len(c.Transforms) == 0 {
		c.Transforms = redteam.TransformKinds()
	}
	for _, t := range c.Transforms {
		if _, err := redteam.Transform(t, "x"); err != nil {
			return fmt.Errorf("redteam: %w", err)
		}
	}
	if c.Sampling.MaxTokens <= 0 {
		c.Sampling.MaxTokens = 512
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Dedup.Threshold == 0 {
		c.Dedup.Threshold = 0.7
	}
	if c.Dedup.Shingle == 0 {
		c.Dedup.Shingle = 5
	}
	if c.Dedup.NumPerm == 0 {
		c.Dedup.NumPerm = 128
	}
	if c.Near.Threshold == 0 {
		c.Near = dedup.NearOptions()
	}
	seen := map[string]bool{}
	for _, r := range c.Rules {
		if seen[r.ID] {
			return fmt.Errorf("redteam: rule %q appears twice in the catalog", r.ID)
		}
		seen[r.ID] = true
	}
	return nil
}

func (c *Config) fingerprint() Fingerprint {
	var eval []string
	names := make([]string, 0, len(c.Eval))
	for s := range c.Eval {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		eval = append(eval, s)
		eval = append(eval, c.Eval[s]...)
	}
	return Fingerprint{
		Generator: c.Generator.Name(), Sampling: c.Sampling,
		SamplesPerRule: c.SamplesPerRule, PromptsPerStrategy: c.PromptsPerStrategy,
		Strategies: c.Strategies, Transforms: c.Transforms,
		DedupThreshold: c.Dedup.Threshold, DedupShingle: c.Dedup.Shingle, DedupPerm: c.Dedup.NumPerm,
		NearThreshold: c.Near.Threshold,
		Rules:         len(c.Rules), RulesSHA256: hashJSON(c.Rules),
		Malicious: len(c.Malicious), MaliciousSHA256: hashJSON(c.Malicious),
		Benign: len(c.Benign), BenignSHA256: hashJSON(c.Benign),
		EvalPrompts: len(eval) - len(names), EvalSHA256: hashJSON(eval),
	}
}

// seed is a verified vulnerable snippet.
type seed struct {
	Hash     string `json:"hash"`
	Rule     string `json:"rule"`
	RuleName string `json:"rule_name"`
	CWE      string `json:"cwe"`
	Flagged  string `json:"flagged_by"`
	Code     string `json:"code"`
	Key      string `json:"key"`
}

// Row is an output prompt row (design.md's RL prompt row).
type Row struct {
	ID       string            `json:"id"`
	Messages []redteam.Message `json:"messages"`
	Oracle   string            `json:"oracle"`
	Meta     map[string]any    `json:"meta"`
}

// Run runs (or resumes) the pipeline and returns the final manifest. When
// ctx is cancelled it returns ctx's error, and every item finished before
// stays in the stage logs.
func Run(ctx context.Context, cfg Config) (*Manifest, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	fp := cfg.fingerprint()
	man := &Manifest{Version: ManifestVersion, ConfigHash: fp.hash(), Config: fp, Status: "running"}
	if err := claim(cfg.Out, man); err != nil {
		return nil, err
	}
	rules := map[string]Rule{}
	var r2cKeys []string
	for _, r := range cfg.Rules {
		rules[r.ID] = r
		for s := range cfg.SamplesPerRule {
			r2cKeys = append(r2cKeys, fmt.Sprintf("%s#%d", r.ID, s))
		}
	}
	r2cLog, err := openLog(filepath.Join(cfg.Out, dirWork, StageRule2Code+".jsonl"), keySet(r2cKeys))
	if err != nil {
		return nil, err
	}
	defer r2cLog.close()
	err = runStage(ctx, &cfg, StageRule2Code, r2cKeys, r2cLog, func(ctx context.Context, key string) (Record, error) {
		id, sample := splitKey(key)
		r := rules[id]
		text, err := cfg.Generator.Complete(ctx, rule2codeMessages(r, sample), cfg.itemSampling(StageRule2Code, key))
		if err != nil {
			return Record{Key: key, Status: StatusRejected, Reason: failureReason(err)}, nil
		}
		code, reason := extractSnippet(cfg.Analyzer, text)
		if reason != "" {
			return Record{Key: key, Status: StatusRejected, Reason: reason}, nil
		}
		cwe, fired, err := confirm(cfg.Analyzer, r, code)
		if err != nil {
			return Record{}, err
		}
		if fired == "" {
			return Record{Key: key, Status: StatusRejected, Reason: ReasonNotFlagged}, nil
		}
		return Record{Key: key, Status: StatusAccepted, Text: code, CWE: cwe, Rule: fired}, nil
	})
	if err != nil {
		return nil, err
	}

	var seeds []seed
	seedByHash := map[string]bool{}
	for _, k := range r2cKeys {
		rec, _ := r2cLog.get(k)
		if rec.Status != StatusAccepted {
			continue
		}
		h := sha256.Sum256([]byte(rec.Text))
		hash := hex.EncodeToString(h[:8])
		if seedByHash[hash] {
			continue
		}
		seedByHash[hash] = true
		id, _ := splitKey(k)
		seeds = append(seeds, seed{Hash: hash, Rule: id, RuleName: rules[id].Name, CWE: rec.CWE, Flagged: rec.Rule, Code: rec.Text, Key: k})
	}
	seedOf := map[string]seed{}
	var v2pKeys []string
	for _, s := range seeds {
		seedOf[s.Hash] = s
		for _, st := range cfg.Strategies {
			for j := range cfg.PromptsPerStrategy {
				v2pKeys = append(v2pKeys, fmt.Sprintf("%s#%s#%d", s.Hash, st, j))
			}
		}
	}
	v2pLog, err := openLog(filepath.Join(cfg.Out, dirWork, StageVul2Prompt+".jsonl"), keySet(v2pKeys))
	if err != nil {
		return nil, err
	}
	defer v2pLog.close()
	err = runStage(ctx, &cfg, StageVul2Prompt, v2pKeys, v2pLog, func(ctx context.Context, key string) (Record, error) {
		parts := strings.SplitN(key, "#", 3)
		var j int
		fmt.Sscan(parts[2], &j)
		text, err := cfg.Generator.Complete(ctx, vul2promptMessages(seedOf[parts[0]], parts[1], j), cfg.itemSampling(StageVul2Prompt, key))
		if err != nil {
			return Record{Key: key, Status: StatusRejected, Reason: failureReason(err)}, nil
		}
		req, reason := extractRequest(text)
		if reason != "" {
			return Record{Key: key, Status: StatusRejected, Reason: reason}, nil
		}
		return Record{Key: key, Status: StatusAccepted, Text: req}, nil
	})
	if err != nil {
		return nil, err
	}
	return finish(&cfg, man, rules, r2cKeys, r2cLog, seeds, seedOf, v2pKeys, v2pLog)
}

// claim checks that out is new or holds this run, and records the run in
// manifest.json before any other write.
func claim(out string, man *Manifest) error {
	path := filepath.Join(out, FileManifest)
	old, err := ReadManifest(path)
	switch {
	case err == nil:
		if old.ConfigHash != man.ConfigHash {
			return fmt.Errorf("%w: %s was made with config hash %s, this run's is %s (%s); use another output directory",
				ErrManifest, path, old.ConfigHash[:12], man.ConfigHash[:12], strings.Join(old.Config.diff(man.Config), "; "))
		}
	case errors.Is(err, fs.ErrNotExist):
		if entries, _ := os.ReadDir(filepath.Join(out, dirWork)); len(entries) > 0 {
			return fmt.Errorf("%w: %s has stage logs but no %s, so what made them is unknown; use another output directory",
				ErrManifest, out, FileManifest)
		}
	default:
		return fmt.Errorf("%w: %v; nothing in %s was changed", ErrManifest, err, out)
	}
	if err := os.MkdirAll(filepath.Join(out, dirWork), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	if err == nil {
		return nil // the existing manifest already describes this run
	}
	return writeManifest(out, man)
}

func writeManifest(out string, man *Manifest) error {
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return writeAtomic(filepath.Join(out, FileManifest), append(b, '\n'))
}

func keySet(keys []string) func(string) bool {
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return func(k string) bool { return set[k] }
}

// splitKey splits "RULE#N" at its last '#'.
func splitKey(key string) (string, int) {
	i := strings.LastIndexByte(key, '#')
	var n int
	fmt.Sscan(key[i+1:], &n)
	return key[:i], n
}

// itemSampling derives the item's sampling seed from the run seed, the
// stage and the key, so a result does not depend on which worker or which
// run produced it.
func (c *Config) itemSampling(stage, key string) Sampling {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], c.Sampling.Seed)
	h.Write(b[:])
	h.Write([]byte(stage + "\x00" + key))
	s := c.Sampling
	s.Seed = h.Sum64() >> 1 // OpenAI-style servers want a non-negative int64
	return s
}

// runStage runs work on every key not yet logged, Concurrency at a time,
// and logs each result. Items in flight when ctx ends are not logged.
func runStage(ctx context.Context, cfg *Config, stage string, keys []string, log *stageLog, work func(context.Context, string) (Record, error)) error {
	var pending []string
	done, accepted := 0, 0
	for _, k := range keys {
		if r, ok := log.get(k); ok {
			done++
			if r.Status == StatusAccepted {
				accepted++
			}
		} else {
			pending = append(pending, k)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(stage, done, len(keys), accepted)
	}
	if len(pending) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range min(cfg.Concurrency, len(pending)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				rec, err := work(ctx, k)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					err = log.add(rec)
				}
				if err != nil {
					cancel(fmt.Errorf("%s item %s: %w", stage, k, err))
					return
				}
				mu.Lock()
				done++
				if rec.Status == StatusAccepted {
					accepted++
				}
				if cfg.Progress != nil {
					cfg.Progress(stage, done, len(keys), accepted)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, k := range pending {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// candidate is a prompt before decontamination and dedup: a vul2prompt
// request, or a malicious or benign seed (expanded after the filters).
type candidate struct {
	id, text string
	rows     []Row
}

func finish(cfg *Config, man *Manifest, rules map[string]Rule, r2cKeys []string, r2cLog *stageLog,
	seeds []seed, seedOf map[string]seed, v2pKeys []string, v2pLog *stageLog) (*Manifest, error) {
	man.PerCWE = map[string]*CWEStats{}
	cweOf := func(ruleID string) *CWEStats {
		c := primaryCWE(rules[ruleID])
		if man.PerCWE[c] == nil {
			man.PerCWE[c] = &CWEStats{}
		}
		return man.PerCWE[c]
	}
	r2c := stageStats(StageRule2Code, r2cKeys, r2cLog)
	r2c.Rows = len(seeds)
	for _, k := range r2cKeys {
		id, _ := splitKey(k)
		cweOf(id).Attempts++
	}
	for _, s := range seeds {
		cweOf(s.Rule).Seeds++
	}
	v2p := stageStats(StageVul2Prompt, v2pKeys, v2pLog)

	var cands []candidate
	for _, k := range v2pKeys {
		rec, _ := v2pLog.get(k)
		if rec.Status != StatusAccepted {
			continue
		}
		parts := strings.SplitN(k, "#", 3)
		s := seedOf[parts[0]]
		family := s.Rule
		if !rules[s.Rule].Analyzer {
			family = s.CWE
		}
		id := fmt.Sprintf("v2p-%s-%s-%s", s.Hash, parts[1], parts[2])
		cands = append(cands, candidate{id: id, text: rec.Text, rows: []Row{{
			ID: id, Messages: []redteam.Message{{Role: "user", Content: rec.Text}}, Oracle: redteam.OracleCodeSec,
			Meta: map[string]any{"kind": redteam.KindCoding, "family": family, "cwe": s.CWE, "rule": s.Rule,
				"strategy": parts[1], "seed_hash": s.Hash, "generator": cfg.Generator.Name(), "stage": StageVul2Prompt},
		}}})
	}
	v2p.Rows = len(cands)
	mal := StageStats{Name: StageMalicious, Items: len(cfg.Malicious) * len(cfg.Transforms)}
	for _, sd := range cfg.Malicious {
		c := candidate{id: "mal-" + sd.ID, text: sd.Prompt}
		for _, t := range cfg.Transforms {
			msgs, _ := redteam.Transform(t, sd.Prompt) // kinds checked in defaults
			name := t
			if name == redteam.JailbreakNone {
				name = "plain"
			}
			c.rows = append(c.rows, Row{ID: "mal-" + sd.ID + "-" + name, Messages: msgs, Oracle: redteam.OracleGeneralSafety,
				Meta: map[string]any{"kind": redteam.KindMalicious, "family": sd.Topic, "jailbreak": name, "seed": sd.ID, "stage": StageMalicious}})
		}
		cands = append(cands, c)
		mal.Rows += len(c.rows)
	}
	ben := StageStats{Name: StageBenign, Items: len(cfg.Benign)}
	for _, sd := range cfg.Benign {
		id := "ben-" + sd.ID
		cands = append(cands, candidate{id: id, text: sd.Prompt, rows: []Row{{ID: id,
			Messages: []redteam.Message{{Role: "user", Content: sd.Prompt}}, Oracle: redteam.OracleNoReject,
			Meta: map[string]any{"kind": redteam.KindBenign, "family": "benign", "topic": sd.Topic, "seed": sd.ID, "stage": StageBenign}}}})
		ben.Rows++
	}
	for _, s := range []*StageStats{&mal, &ben} {
		s.Done, s.Accepted = s.Items, s.Items
		s.Acceptance = rate(s.Accepted, s.Done)
	}
	man.Stages = []StageStats{r2c, v2p, mal, ben}

	kept, dropped, err := filter(cfg, man, cands)
	if err != nil {
		return nil, err
	}
	man.PerStrategy, man.PerTransform = map[string]int{}, map[string]int{}
	man.Output = OutputStats{File: FilePrompts, ByOracle: map[string]int{}}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	for _, c := range kept {
		for _, r := range c.rows {
			if err := enc.Encode(r); err != nil {
				return nil, fmt.Errorf("encode row %s: %w", r.ID, err)
			}
			man.Output.Rows++
			man.Output.ByOracle[r.Oracle]++
			switch r.Meta["stage"] {
			case StageVul2Prompt:
				man.PerStrategy[r.Meta["strategy"].(string)]++
				cweOf(r.Meta["rule"].(string)).Prompts++
			case StageMalicious:
				man.PerTransform[r.Meta["jailbreak"].(string)]++
			}
		}
	}
	h := sha256.Sum256(out.Bytes())
	man.Output.SHA256 = hex.EncodeToString(h[:])
	var seedBuf bytes.Buffer
	for _, s := range seeds {
		if err := json.NewEncoder(&seedBuf).Encode(s); err != nil {
			return nil, fmt.Errorf("encode seed %s: %w", s.Hash, err)
		}
	}
	for name, data := range map[string][]byte{FilePrompts: out.Bytes(), FileSeeds: seedBuf.Bytes(), FileDropped: dropped} {
		if err := writeAtomic(filepath.Join(cfg.Out, name), data); err != nil {
			return nil, err
		}
	}
	man.Status = "complete"
	if err := writeManifest(cfg.Out, man); err != nil {
		return nil, err
	}
	return man, nil
}

func stageStats(name string, keys []string, log *stageLog) StageStats {
	s := StageStats{Name: name, Items: len(keys), Rejected: map[string]int{}}
	for _, k := range keys {
		r, ok := log.get(k)
		if !ok {
			continue
		}
		s.Done++
		if r.Status == StatusAccepted {
			s.Accepted++
		} else {
			s.Rejected[r.Reason]++
		}
	}
	s.Acceptance = rate(s.Accepted, s.Done)
	return s
}

func rate(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// droppedLine is one line of dropped.jsonl.
type droppedLine struct {
	ID      string  `json:"id"`
	Filter  string  `json:"filter"` // "decontamination" or "dedup"
	Reason  string  `json:"reason"`
	Suite   string  `json:"suite,omitempty"`
	Item    *int    `json:"item,omitempty"`
	DupOf   string  `json:"dup_of,omitempty"`
	Jaccard float64 `json:"jaccard,omitempty"`
	Rows    int     `json:"rows"`
	Text    string  `json:"text"`
}

// filter decontaminates the candidates against the evaluation prompts,
// deduplicates the rest, and returns the kept candidates in order with the
// dropped.jsonl contents.
func filter(cfg *Config, man *Manifest, cands []candidate) ([]candidate, []byte, error) {
	byID := make(map[string]*candidate, len(cands))
	ids := make([]string, len(cands))
	texts := make([]string, len(cands))
	for i := range cands {
		byID[cands[i].id] = &cands[i]
		ids[i], texts[i] = cands[i].id, cands[i].text
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	_, hits := dedup.DecontaminateAll(cfg.Near, cfg.Eval, ids, texts)
	man.Decontam = DropStats{Input: len(cands), ByReason: map[string]int{}, BySuite: map[string]int{}}
	gone := map[string]bool{}
	for _, h := range hits {
		c := byID[h.ID]
		gone[h.ID] = true
		man.Decontam.Dropped++
		man.Decontam.RowsDropped += len(c.rows)
		man.Decontam.ByReason[h.Reason]++
		man.Decontam.BySuite[h.Suite]++
		item := h.Item
		if err := enc.Encode(droppedLine{ID: h.ID, Filter: "decontamination", Reason: h.Reason, Suite: h.Suite, Item: &item,
			Jaccard: h.Jaccard, Rows: len(c.rows), Text: c.text}); err != nil {
			return nil, nil, fmt.Errorf("encode drop %s: %w", h.ID, err)
		}
	}
	d := dedup.New(cfg.Dedup)
	for _, c := range cands {
		if !gone[c.id] {
			if err := d.Add(c.id, c.text); err != nil {
				return nil, nil, fmt.Errorf("dedup: %w", err)
			}
		}
	}
	_, drops := d.Result()
	man.Dedup = DropStats{Input: len(cands) - len(hits), ByReason: map[string]int{}}
	for _, dr := range drops {
		c := byID[dr.ID]
		gone[dr.ID] = true
		man.Dedup.Dropped++
		man.Dedup.RowsDropped += len(c.rows)
		man.Dedup.ByReason["near-duplicate"]++
		if err := enc.Encode(droppedLine{ID: dr.ID, Filter: "dedup", Reason: "near-duplicate", DupOf: dr.DupOf,
			Jaccard: dr.Jaccard, Rows: len(c.rows), Text: c.text}); err != nil {
			return nil, nil, fmt.Errorf("encode drop %s: %w", dr.ID, err)
		}
	}
	var kept []candidate
	for _, c := range cands {
		if !gone[c.id] {
			kept = append(kept, c)
		}
	}
	return kept, buf.Bytes(), nil
}
