package dist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Slurm writes node lists in a compressed form: "node[03-05,07],gpu1"
// is node03, node04, node05, node07 and gpu1. A bracket holds numbers
// and ranges; a range's numbers keep the width of its lower bound
// ("[08-10]" is 08, 09, 10). A host may have several brackets
// ("rack[1-2]n[1-4]"), which multiply out in order.

// hostPattern is one comma-separated entry: literal text and brackets.
type hostPattern []hostPart

// hostPart is literal text, or (when ranges is non-nil) one bracket.
type hostPart struct {
	text   string
	ranges []numRange
}

type numRange struct {
	lo, hi int
	width  int // digits of the lower bound, kept when zero-padded
}

func (r numRange) format(v int) string {
	s := strconv.Itoa(v)
	if len(s) < r.width {
		s = strings.Repeat("0", r.width-len(s)) + s
	}
	return s
}

// FirstHost returns the first host of a Slurm node list, where rank 0 runs
// under srun's default block distribution. The whole list is checked.
func FirstHost(list string) (string, error) {
	pats, err := parseNodeList(list)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, part := range pats[0] {
		if part.ranges == nil {
			b.WriteString(part.text)
		} else {
			b.WriteString(part.ranges[0].format(part.ranges[0].lo))
		}
	}
	return b.String(), nil
}

// ExpandNodeList returns the hosts of a Slurm node list in order, refusing
// lists of more than limit hosts.
func ExpandNodeList(list string, limit int) ([]string, error) {
	pats, err := parseNodeList(list)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, pat := range pats {
		names := []string{""}
		for _, part := range pat {
			if part.ranges == nil {
				for i := range names {
					names[i] += part.text
				}
				continue
			}
			var next []string
			for _, prefix := range names {
				for _, r := range part.ranges {
					for v := r.lo; v <= r.hi; v++ {
						if len(hosts)+len(next) >= limit {
							return nil, fmt.Errorf("node list %q: more than %d hosts", list, limit)
						}
						next = append(next, prefix+r.format(v))
					}
				}
			}
			names = next
		}
		hosts = append(hosts, names...)
	}
	return hosts, nil
}

// maxRangeValue bounds the numbers in brackets (node indices, not data).
const maxRangeValue = 1 << 30

func parseNodeList(list string) ([]hostPattern, error) {
	fail := func(pos int, why string) ([]hostPattern, error) {
		return nil, fmt.Errorf("node list %q: %s at byte %d", list, why, pos)
	}
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("node list is empty")
	}
	var (
		pats []hostPattern
		cur  hostPattern
		text strings.Builder
	)
	flush := func() {
		if text.Len() > 0 {
			cur = append(cur, hostPart{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(list); i++ {
		ch := list[i]
		switch {
		case ch == ',':
			flush()
			if len(cur) == 0 {
				return fail(i, "empty host name")
			}
			pats, cur = append(pats, cur), nil
		case ch == '[':
			flush()
			end := strings.IndexByte(list[i:], ']')
			if end < 0 {
				return fail(i, "unclosed '['")
			}
			ranges, pos, why := parseRanges(list[i+1 : i+end])
			if why != "" {
				return fail(i+1+pos, why)
			}
			cur = append(cur, hostPart{ranges: ranges})
			i += end
		case ch == ']':
			return fail(i, "']' without '['")
		case ch <= ' ' || ch == 0x7f:
			return fail(i, "space or control character")
		default:
			text.WriteByte(ch)
		}
	}
	flush()
	if len(cur) == 0 {
		return fail(len(list), "empty host name")
	}
	return append(pats, cur), nil
}

// parseRanges parses a bracket's inside, "03-05,07"; on error it returns
// the offset and the reason.
func parseRanges(s string) ([]numRange, int, string) {
	var out []numRange
	pos := 0
	for item := range strings.SplitSeq(s, ",") {
		loS, hiS, isRange := strings.Cut(item, "-")
		lo, ok1 := parseIndex(loS)
		hi, ok2 := lo, true
		if isRange {
			hi, ok2 = parseIndex(hiS)
		}
		switch {
		case !ok1 || !ok2:
			return nil, pos, fmt.Sprintf("bad range %q in brackets (want N or N-M, decimal)", item)
		case hi < lo:
			return nil, pos, fmt.Sprintf("range %q runs backwards", item)
		}
		out = append(out, numRange{lo: lo, hi: hi, width: len(loS)})
		pos += len(item) + 1
	}
	return out, 0, ""
}

func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for _, ch := range []byte(s) {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s)
	return v, err == nil && v <= maxRangeValue
}
