package oracle

import (
	"purpcode/analyzer"
	"purpcode/sandbox"
)

// NewScorerFor builds the oracles rows need: the analyzer always (codesec,
// and Python extraction for correctness), the sandbox only when a
// correctness row exists (workers bounds its jobs; 0: all cores). judge nil
// means the heuristic classifier. The returned function releases the
// analyzer.
func NewScorerFor(rows []Row, judge Judge, cfg Config, workers int) (*Scorer, func(), error) {
	an, err := analyzer.New()
	if err != nil {
		return nil, nil, err
	}
	var sb *sandbox.Runner
	for _, r := range rows {
		if r.Oracle == OracleCorrectness {
			if sb, err = sandbox.New(sandbox.Options{Workers: workers}); err != nil {
				an.Close()
				return nil, nil, err
			}
			break
		}
	}
	return NewScorer(an, sb, judge, cfg), an.Close, nil
}
