package redteam

import (
	"purpcode/oracle"
)

// Kinds of request in the world, stored in Meta.Kind.
const (
	KindCoding    = "coding"
	KindMalicious = "malicious"
	KindBenign    = "benign"
)

// Splits, stored in Meta.Split.
const (
	SplitTrain      = "train"
	SplitValidation = "validation"
	SplitTest       = "test" // the held-out templates, read only by the final evaluation
)

// Oracle names of the prompt rows (design.md's RL prompt rows).
const (
	OracleCodeSec       = "codesec"
	OracleCorrectness   = "correctness"
	OracleGeneralSafety = "general-safety"
	OracleNoReject      = "noreject"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Meta describes where a prompt row comes from.
type Meta struct {
	// Kind is coding, malicious or benign.
	Kind string `json:"kind"`
	// Family is the CWE family name of a coding task, the topic of a
	// malicious request, or "benign".
	Family string `json:"family"`
	// CWE is the family's primary CWE id (coding tasks only).
	CWE string `json:"cwe,omitempty"`
	// Template is the task template id; the split is by template.
	Template string `json:"template"`
	Split    string `json:"split"`
	// Task pairs the codesec and the correctness row of one coding task.
	Task string `json:"task,omitempty"`
	// Jailbreak names the transform applied to a malicious request
	// ("" when none).
	Jailbreak string `json:"jailbreak,omitempty"`
}

// PromptRow is an RL/eval prompt row:
// {"id","messages","oracle","tests"?,"meta"}.
type PromptRow struct {
	ID       string        `json:"id"`
	Messages []Message     `json:"messages"`
	Oracle   string        `json:"oracle"`
	Tests    *oracle.Tests `json:"tests,omitempty"`
	Meta     Meta          `json:"meta"`
}

// Behaviour labels of corpus responses.
const (
	BehaviourSecure      = "secure"      // coding: secure implementation
	BehaviourInsecure    = "insecure"    // coding: insecure implementation
	BehaviourRefusal     = "refusal"     // malicious: refused with an alternative
	BehaviourCompliant   = "compliant"   // malicious: content-free "compliance"
	BehaviourAnswer      = "answer"      // benign: helpful answer
	BehaviourOverRefusal = "overrefusal" // benign: wrongly refused
)

// Conversation is one pretraining corpus row. Only Messages is written to
// the corpus JSONL (design.md's chat row); the rest is kept for summaries
// and tests.
type Conversation struct {
	Messages  []Message `json:"messages"`
	Meta      Meta      `json:"-"`
	System    bool      `json:"-"` // a system prompt with RuleContext leads
	Behaviour string    `json:"-"`
}
