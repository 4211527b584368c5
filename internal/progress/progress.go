package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// PlainInterval is the longest a plain (non-terminal) output stays silent
// while a bar is moving.
const PlainInterval = 30 * time.Second

// PlainMinGap is the shortest time between two plain lines of a bar other
// than its first and last: a stage of seconds logs two lines, not eleven.
const PlainMinGap = 5 * time.Second

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// redrawEvery is the shortest time between two redraws of a terminal bar:
// a stage of thousands of fast steps would otherwise spend its time
// writing to the terminal.
const redrawEvery = 100 * time.Millisecond

// barWidth is the number of cells of the terminal bar.
const barWidth = 24

// Output is a writer shared by log lines and the progress bars of one
// command. Its methods are safe for concurrent use.
type Output struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
	// width is the terminal's width in columns (0: unknown); a bar line
	// longer than it would wrap and could not be redrawn in place.
	width int
	now   func() time.Time
	// live is the bar currently drawn on the terminal's last line; log
	// lines clear it and draw it again below themselves.
	live *Bar
	// partial is true while the last log write ended mid-line: the bar is
	// not redrawn into the middle of a line.
	partial bool
}

// New returns an Output on w that draws bars when w is a terminal and
// writes plain lines otherwise.
func New(w io.Writer) *Output {
	tty, width := false, 0
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
		width, _, _ = term.GetSize(int(f.Fd()))
	}
	o := NewWith(w, tty, time.Now)
	o.width = width
	return o
}

// NewWith returns an Output with the terminal decision and the clock
// given (for tests).
func NewWith(w io.Writer, tty bool, now func() time.Time) *Output {
	if w == nil {
		w = io.Discard
	}
	return &Output{w: w, tty: tty, now: now}
}

// Terminal reports whether bars are drawn in place.
func (o *Output) Terminal() bool { return o.tty }

// Write writes log text; on a terminal the live bar is cleared first and
// drawn again after the text's last complete line.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live != nil && !o.partial {
		io.WriteString(o.w, clearLine)
	}
	n, err := o.w.Write(p)
	if len(p) > 0 {
		o.partial = p[len(p)-1] != '\n'
	}
	if o.live != nil && !o.partial && err == nil {
		o.live.draw()
	}
	return n, err
}

// Start begins a bar named name counting unit ("steps", "prompts") from
// done items (more than 0 when a stage resumes) to total. The rate counts
// only the items done after Start.
func (o *Output) Start(name, unit string, done, total int64) *Bar {
	return o.start(name, unit, done, total, o.now())
}

func (o *Output) start(name, unit string, done, total int64, at time.Time) *Bar {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := &Bar{o: o, name: name, unit: unit, total: total, done: done, from: done, start: at}
	if o.tty {
		o.live = b
		b.draw()
	}
	return b
}

// Bar is one stage's progress. A nil *Bar ignores every call, so a caller
// may hold one before the stage's total is known.
type Bar struct {
	o           *Output
	name, unit  string
	total, done int64
	from        int64 // done at Start
	start       time.Time
	note        string
	lastLine    time.Time // plain mode: when the last line was written
	lastTenth   int64     // plain mode: tenths of total reported so far
	linedDone   int64     // plain mode: done in the last line
	printed     bool      // plain mode: a line was written
	finished    bool
	drawn       time.Time // terminal: when the bar was last drawn
}

// Set moves the bar to done items with a short note shown after the
// numbers (e.g. the loss); on a plain output it writes a line on the first
// update, on the last item, when done crosses a tenth of total (at least
// PlainMinGap after the last line) and when PlainInterval has passed since
// the last line.
func (b *Bar) Set(done int64, note string) {
	if b == nil {
		return
	}
	o := b.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.finished {
		return
	}
	b.done, b.note = done, note
	now := o.now()
	if o.tty {
		if !o.partial && (now.Sub(b.drawn) >= redrawEvery || done >= b.total) {
			b.draw()
		}
		return
	}
	tenth := int64(0)
	if b.total > 0 {
		tenth = 10 * done / b.total
	}
	gap := now.Sub(b.lastLine)
	if !b.printed || done >= b.total || (tenth > b.lastTenth && gap >= PlainMinGap) || gap >= PlainInterval {
		b.line(now)
	}
}

// SetTotal changes the number of items (a stage that learns its size
// late).
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.o.mu.Lock()
	b.total = total
	b.o.mu.Unlock()
}

// Done ends the bar: on a terminal its final state stays on its own line;
// on a plain output the final line is written unless it already was.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	o := b.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if o.tty {
		if o.live == b {
			o.live = nil
			if o.partial {
				io.WriteString(o.w, "\n")
			}
			b.draw()
			io.WriteString(o.w, "\n")
			o.partial = false
		}
		return
	}
	if !b.printed || b.linedDone != b.done {
		b.line(o.now())
	}
}

// Status is the bar's text without terminal control codes: name, count,
// percent, rate, ETA and note.
func (b *Bar) Status() string {
	if b == nil {
		return ""
	}
	b.o.mu.Lock()
	defer b.o.mu.Unlock()
	return b.status(b.o.now())
}

func (b *Bar) status(now time.Time) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s: %d/%d %s", b.name, b.done, b.total, b.unit)
	if b.total > 0 {
		fmt.Fprintf(&s, " (%d%%)", 100*b.done/b.total)
	}
	elapsed := now.Sub(b.start).Seconds()
	if n := b.done - b.from; n > 0 && elapsed > 0 {
		rate := float64(n) / elapsed
		fmt.Fprintf(&s, ", %s %s/s", rateString(rate), b.unit)
		if left := b.total - b.done; left > 0 {
			fmt.Fprintf(&s, ", ETA %s", Duration(time.Duration(float64(left)/rate*float64(time.Second))))
		} else {
			fmt.Fprintf(&s, ", took %s", Duration(now.Sub(b.start)))
		}
	}
	if b.note != "" {
		s.WriteString("; ")
		s.WriteString(b.note)
	}
	return s.String()
}

// line writes one plain status line (o.mu held).
func (b *Bar) line(now time.Time) {
	fmt.Fprintln(b.o.w, b.status(now))
	b.printed, b.lastLine, b.linedDone = true, now, b.done
	if b.total > 0 {
		b.lastTenth = 10 * b.done / b.total
	}
}

// draw redraws the terminal line (o.mu held).
func (b *Bar) draw() {
	filled := 0
	if b.total > 0 {
		filled = int(min(b.done, b.total) * barWidth / b.total)
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	if filled > 0 && filled < barWidth {
		bar = bar[:filled-1] + ">" + bar[filled:]
	}
	var buf bytes.Buffer
	buf.WriteString(clearLine + "[")
	buf.WriteString(bar)
	buf.WriteString("] ")
	b.drawn = b.o.now()
	buf.WriteString(b.status(b.drawn))
	line := buf.Bytes()
	// Keep one column free so the cursor never wraps to a new line.
	if w := b.o.width - 1 + len(clearLine); w > len(clearLine) && len(line) > w {
		line = truncateRunes(line, w)
	}
	b.o.w.Write(line)
}

// rateString prints a rate with three or four significant digits.
func rateString(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	case r >= 1:
		return fmt.Sprintf("%.2f", r)
	case r >= 0.001:
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.1e", r)
}

// Duration prints a duration rounded for people: 45s, 3m05s, 2h07m.
func Duration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}

// truncateRunes cuts b to at most n bytes without splitting a UTF-8
// sequence.
func truncateRunes(b []byte, n int) []byte {
	for n > 0 && n < len(b) && b[n]&0xC0 == 0x80 {
		n--
	}
	return b[:n]
}

// Counter adapts a stage that reports (done, total) through a callback and
// learns its total only when it runs: its first Update shows the bar, whose
// rate counts from the Counter's creation (the stage's start), not from
// that first item.
type Counter struct {
	o          *Output
	name, unit string
	per        int64
	start      time.Time
	mu         sync.Mutex
	bar        *Bar
	note       string
}

// Counter returns a Counter whose items count per units each (a prompt
// reported done stands for its k samples); per < 1 counts 1.
func (o *Output) Counter(name, unit string, per int) *Counter {
	return &Counter{o: o, name: name, unit: unit, per: int64(max(per, 1)), start: o.now()}
}

// Update moves the bar to done of total items; it fits func(done, total
// int) callbacks.
func (c *Counter) Update(done, total int) {
	c.mu.Lock()
	if c.bar == nil {
		c.bar = c.o.start(c.name, c.unit, 0, int64(total)*c.per, c.start)
	}
	b, note := c.bar, c.note
	c.mu.Unlock()
	b.Set(int64(done)*c.per, note)
}

// Note sets the text shown after the counts from the next Update on (e.g.
// an acceptance rate); safe for concurrent use.
func (c *Counter) Note(note string) {
	c.mu.Lock()
	c.note = note
	c.mu.Unlock()
}

// Done ends the bar, if it started.
func (c *Counter) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bar.Done()
}
