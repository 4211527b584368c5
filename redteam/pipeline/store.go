package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Record is one finished item of a generator stage, as logged.
type Record struct {
	Key    string `json:"key"`
	Status string `json:"status"` // "accepted" or "rejected"
	Reason string `json:"reason,omitempty"`
	// Text is the accepted snippet (rule2code) or request (vul2prompt).
	Text string `json:"text,omitempty"`
	// CWE and Rule say what the analyzer confirmed (rule2code).
	CWE  string `json:"cwe,omitempty"`
	Rule string `json:"rule,omitempty"`
}

// Record statuses.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// stageLog is the append-only log of one stage.
type stageLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
	done map[string]Record
}

// openLog reads the log at path (creating it when missing), cuts a torn
// last line left by a killed run, and opens it for appending. Every key
// must satisfy valid: a log from another item set is an error, not data.
func openLog(path string, valid func(string) bool) (*stageLog, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	whole := data
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		whole = data[:i+1]
	}
	l := &stageLog{path: path, done: map[string]Record{}}
	for n, line := range bytes.Split(bytes.TrimSuffix(whole, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: corrupt stage log: %w", path, n+1, err)
		}
		if r.Status != StatusAccepted && r.Status != StatusRejected || !valid(r.Key) {
			return nil, fmt.Errorf("%s:%d: record %q (status %q) is not an item of this run", path, n+1, r.Key, r.Status)
		}
		if _, dup := l.done[r.Key]; dup {
			return nil, fmt.Errorf("%s:%d: item %q logged twice", path, n+1, r.Key)
		}
		l.done[r.Key] = r
	}
	if len(whole) < len(data) {
		if err := os.Truncate(path, int64(len(whole))); err != nil {
			return nil, fmt.Errorf("cut torn last line of %s: %w", path, err)
		}
	}
	l.f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return l, nil
}

// add appends r with one write, so that a kill tears at most this line.
func (l *stageLog) add(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.Key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append to %s: %w", l.path, err)
	}
	l.done[r.Key] = r
	return nil
}

func (l *stageLog) get(key string) (Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.done[key]
	return r, ok
}

func (l *stageLog) close() error { return l.f.Close() }

// ManifestVersion is the manifest layout this package writes.
const ManifestVersion = 1

// Manifest is manifest.json.
type Manifest struct {
	Version    int          `json:"version"`
	ConfigHash string       `json:"config_hash"`
	Config     Fingerprint  `json:"config"`
	Status     string       `json:"status"` // "running" or "complete"
	Stages     []StageStats `json:"stages,omitempty"`
	// PerCWE counts rule2code attempts and verified seeds and the final
	// vul2prompt rows per primary CWE of the rule.
	PerCWE map[string]*CWEStats `json:"per_cwe,omitempty"`
	// PerStrategy and PerTransform count final rows.
	PerStrategy  map[string]int `json:"per_strategy,omitempty"`
	PerTransform map[string]int `json:"per_transform,omitempty"`
	Decontam     DropStats      `json:"decontamination"`
	Dedup        DropStats      `json:"dedup"`
	Output       OutputStats    `json:"output"`
}

// Fingerprint is what the config hash covers.
type Fingerprint struct {
	Generator          string   `json:"generator"`
	Sampling           Sampling `json:"sampling"` // Seed is the run seed
	SamplesPerRule     int      `json:"samples_per_rule"`
	PromptsPerStrategy int      `json:"prompts_per_strategy"`
	Strategies         []string `json:"strategies"`
	Transforms         []string `json:"transforms"`
	DedupThreshold     float64  `json:"dedup_threshold"`
	DedupShingle       int      `json:"dedup_shingle"`
	DedupPerm          int      `json:"dedup_permutations"`
	NearThreshold      float64  `json:"decontam_threshold"`
	Rules              int      `json:"rules"`
	RulesSHA256        string   `json:"rules_sha256"`
	Malicious          int      `json:"malicious_seeds"`
	MaliciousSHA256    string   `json:"malicious_sha256"`
	Benign             int      `json:"benign_seeds"`
	BenignSHA256       string   `json:"benign_sha256"`
	EvalPrompts        int      `json:"eval_prompts"`
	EvalSHA256         string   `json:"eval_sha256"`
}

// StageStats counts one stage. Done = Accepted + the sum of Rejected.
type StageStats struct {
	Name       string         `json:"name"`
	Items      int            `json:"items"`
	Done       int            `json:"done"`
	Accepted   int            `json:"accepted"`
	Rejected   map[string]int `json:"rejected,omitempty"`
	Acceptance float64        `json:"acceptance"`
	// Rows is what the stage passes on: verified seeds (rule2code) or
	// candidate prompts (the others).
	Rows int `json:"rows"`
}

// CWEStats counts one CWE.
type CWEStats struct {
	Attempts int `json:"attempts"`
	Seeds    int `json:"seeds"`
	Prompts  int `json:"prompts"`
}

// DropStats counts the removals of one filter over candidate prompts
// (vul2prompt requests and seed requests, before jailbreak expansion).
type DropStats struct {
	Input    int            `json:"input"`
	Dropped  int            `json:"dropped"`
	ByReason map[string]int `json:"by_reason,omitempty"`
	BySuite  map[string]int `json:"by_suite,omitempty"`
	// RowsDropped counts the output rows the dropped candidates would have
	// given (a malicious seed gives one row per transform).
	RowsDropped int `json:"rows_dropped"`
}

// OutputStats describes prompts.jsonl.
type OutputStats struct {
	File     string         `json:"file"`
	Rows     int            `json:"rows"`
	ByOracle map[string]int `json:"by_oracle,omitempty"`
	SHA256   string         `json:"sha256"`
}

// ErrManifest marks an output directory this run must not touch.
var ErrManifest = errors.New("output directory belongs to another run")

// ReadManifest reads and checks manifest.json.
func ReadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not a redteam manifest: %w", path, err)
	}
	if m.Version != ManifestVersion || m.ConfigHash == "" {
		return nil, fmt.Errorf("%s: manifest version %d with config hash %q, want version %d with a hash", path, m.Version, m.ConfigHash, ManifestVersion)
	}
	if got := m.Config.hash(); got != m.ConfigHash {
		return nil, fmt.Errorf("%s: config hash %s does not match its own config (%s): the manifest was edited", path, m.ConfigHash, got)
	}
	return &m, nil
}

func (f Fingerprint) hash() string {
	b, _ := json.Marshal(f) // a struct of plain fields always encodes
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// diff names the fingerprint fields that differ.
func (f Fingerprint) diff(g Fingerprint) []string {
	var a, b map[string]any
	ja, _ := json.Marshal(f)
	jb, _ := json.Marshal(g)
	_ = json.Unmarshal(ja, &a)
	_ = json.Unmarshal(jb, &b)
	var out []string
	for k := range a {
		x, _ := json.Marshal(a[k])
		y, _ := json.Marshal(b[k])
		if !bytes.Equal(x, y) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, x, y))
		}
	}
	sort.Strings(out)
	return out
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// hashJSON is the SHA-256 of v's JSON encoding.
func hashJSON(v any) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(v) // slices of plain structs always encode
	return hex.EncodeToString(h.Sum(nil))
}
