package ptxmath

import (
	"fmt"
	"strings"
)

// ShflMode is the mode of shfl.sync.
type ShflMode uint8

// The shfl.sync modes.
const (
	ShflUp ShflMode = iota
	ShflDown
	ShflBfly
	ShflIdx
)

// ParseShflMode accepts "up", "down", "bfly" or "idx", with or without dot.
func ParseShflMode(s string) (ShflMode, error) {
	switch strings.TrimPrefix(s, ".") {
	case "up":
		return ShflUp, nil
	case "down":
		return ShflDown, nil
	case "bfly":
		return ShflBfly, nil
	case "idx":
		return ShflIdx, nil
	}
	return 0, fmt.Errorf("ptxmath: unknown shfl mode %q", s)
}

// String returns the mode without its dot.
func (m ShflMode) String() string {
	switch m {
	case ShflUp:
		return "up"
	case ShflDown:
		return "down"
	case ShflBfly:
		return "bfly"
	case ShflIdx:
		return "idx"
	}
	return fmt.Sprintf("ShflMode(%d)", uint8(m))
}

// ShflSource implements the lane arithmetic of shfl.sync.mode.b32 d|p, a, b,
// c, membermask for the executing lane, per the ISA pseudocode:
//
//	bval = b[4:0]; cval = c[4:0]; segmask = c[12:8]
//	maxLane = (lane & segmask) | (cval & ~segmask); minLane = lane & segmask
//	up:   j = lane - bval; p = j >= maxLane
//	down: j = lane + bval; p = j <= maxLane
//	bfly: j = lane ^ bval; p = j <= maxLane
//	idx:  j = minLane | (bval & ~segmask); p = j <= maxLane
//	if !p { j = lane }
//
// It returns the lane j whose a operand lane reads into d and the predicate
// p (true when j was in range; when false the lane reads its own a). For
// the usual full-warp butterfly c = 0x1F (segmask 0, clamp 31).
func ShflSource(mode ShflMode, lane, b, c uint32) (src uint32, inRange bool) {
	l := int32(lane & 31)
	bval := int32(b & 31)
	cval := int32(c & 31)
	seg := int32(c >> 8 & 31)
	maxLane := l&seg | cval&^seg
	minLane := l & seg
	var j int32
	switch mode {
	case ShflUp:
		j = l - bval
		inRange = j >= maxLane
	case ShflDown:
		j = l + bval
		inRange = j <= maxLane
	case ShflBfly:
		j = l ^ bval
		inRange = j <= maxLane
	default:
		j = minLane | bval&^seg
		inRange = j <= maxLane
	}
	if !inRange {
		j = l
	}
	return uint32(j), inRange
}

// ShflWarp executes shfl.sync.mode.b32 for one warp: for every lane in
// memberMask it computes the source lane from that lane's b and c operands
// and returns the source lane's a value and the in-range predicate. Lanes
// outside memberMask get zero values. It is an error (undefined behaviour in
// the ISA) when a lane reads from a lane outside memberMask.
func ShflWarp(mode ShflMode, memberMask uint32, a, b, c *[32]uint32) (d [32]uint32, p [32]bool, err error) {
	for lane := range uint32(32) {
		if memberMask>>lane&1 == 0 {
			continue
		}
		src, ok := ShflSource(mode, lane, b[lane], c[lane])
		if memberMask>>src&1 == 0 {
			return d, p, fmt.Errorf("shfl.sync.%s: lane %d reads lane %d, which is not in membermask %#08x", mode, lane, src, memberMask)
		}
		d[lane], p[lane] = a[src], ok
	}
	return d, p, nil
}
