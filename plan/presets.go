package plan

import (
	"embed"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"purpcode/model/qwen2"
)

// presets are the config.json files of the models the project targets,
// shapes only (no weights), so a plan needs no download.
//
//go:embed presets/*.json
var presets embed.FS

// Presets lists the names Preset accepts.
func Presets() []string {
	entries, _ := presets.ReadDir("presets") // embedded: cannot fail
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(out)
	return out
}

// Preset returns the config of a named model ("qwen2.5-32b"; an
// "-instruct" suffix is accepted, the shapes are the same), and false when
// the name is not a preset.
func Preset(name string) (*qwen2.Config, bool, error) {
	key := strings.TrimSuffix(strings.ToLower(name), "-instruct")
	data, err := presets.ReadFile("presets/" + key + ".json")
	if err != nil {
		return nil, false, nil
	}
	cfg, err := qwen2.ParseConfig(data, "preset "+key)
	if err != nil {
		return nil, true, err
	}
	return cfg, true, nil
}

// ParseBytes reads a memory size: a number with an optional unit B, KB,
// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), in
// any case; "80GiB", "141GB", "1.5TiB", "85899345920".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    float64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
	}
	mul := 1.0
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mul, t = u.mul, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v >= 0) || v*mul > 1<<62 { // !(v >= 0) also refuses NaN
		return 0, fmt.Errorf("memory size %q: want a non-negative number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	return int64(v * mul), nil
}
