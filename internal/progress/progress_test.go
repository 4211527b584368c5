package progress

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// clock is a fake time source advanced by the test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestPlainLinesAtTenthsIntervalAndEnd(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1000, 0)}
	o := NewWith(&buf, false, c.now)
	b := o.Start("distill", "prompts", 0, 40)
	for i := int64(1); i <= 40; i++ {
		c.t = c.t.Add(2 * time.Second)
		b.Set(i, fmt.Sprintf("accepted %d", i/2))
	}
	b.Done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// The first update, then one line per tenth (4 prompts = 8 s, under
	// the interval), the last one included; Done adds nothing.
	if len(lines) != 11 {
		t.Fatalf("%d lines, want 11:\n%s", len(lines), buf.String())
	}
	if want := "distill: 1/40 prompts (2%), 0.500 prompts/s, ETA 1m18s; accepted 0"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if want := "distill: 40/40 prompts (100%), 0.500 prompts/s, took 1m20s; accepted 20"; lines[10] != want {
		t.Errorf("last line %q, want %q", lines[10], want)
	}
	if strings.Contains(buf.String(), "\r") || strings.Contains(buf.String(), "\033") {
		t.Error("plain output holds terminal control codes")
	}
}

func TestPlainLineAfterInterval(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, false, c.now)
	b := o.Start("sft", "steps", 0, 1000)
	b.Set(1, "")
	c.t = c.t.Add(PlainInterval - time.Second)
	b.Set(2, "") // same tenth, under the interval: silent
	c.t = c.t.Add(time.Second)
	b.Set(3, "") // the interval has passed
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "sft: 3/1000 steps") {
		t.Fatalf("lines %q, want the first update and step 3", lines)
	}
	b.Done() // interrupted before the end: the last state is written once
	b.Done()
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Errorf("Done after a written state added lines: %q", buf.String())
	}
	b.Set(4, "")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Errorf("Set after Done wrote: %q", buf.String())
	}
}

func TestRateCountsOnlyItemsAfterStart(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, false, c.now)
	b := o.Start("rl", "steps", 6, 10) // resumed at step 6
	c.t = c.t.Add(4 * time.Second)
	b.Set(8, "")
	if got, want := b.Status(), "rl: 8/10 steps (80%), 0.500 steps/s, ETA 4s"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
}

func TestTerminalRedrawsBelowLogLines(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, true, c.now)
	b := o.Start("eval", "prompts", 0, 4)
	c.t = c.t.Add(time.Second)
	b.Set(2, "")
	fmt.Fprintf(o, "a log line\n")
	b.Done()
	got := buf.String()
	want := clearLine + "[                        ] eval: 0/4 prompts (0%)" +
		clearLine + "[===========>            ] eval: 2/4 prompts (50%), 2.00 prompts/s, ETA 1s" +
		clearLine + "a log line\n" +
		clearLine + "[===========>            ] eval: 2/4 prompts (50%), 2.00 prompts/s, ETA 1s" +
		clearLine + "[===========>            ] eval: 2/4 prompts (50%), 2.00 prompts/s, ETA 1s\n"
	if got != want {
		t.Errorf("terminal output\n%q\nwant\n%q", got, want)
	}
	fmt.Fprintf(o, "after\n")
	if !strings.HasSuffix(buf.String(), "ETA 1s\nafter\n") {
		t.Errorf("a log line after Done redrew a finished bar: %q", buf.String())
	}
}

func TestTerminalLineFitsWidth(t *testing.T) {
	var buf bytes.Buffer
	o := NewWith(&buf, true, (&clock{}).now)
	o.width = 40
	o.Start("distill", "prompts", 0, 10).Set(1, strings.Repeat("é", 30))
	last := buf.String()[strings.LastIndex(buf.String(), clearLine)+len(clearLine):]
	if n := len([]rune(last)); n > 39 {
		t.Errorf("bar line of %d columns on a 40-column terminal: %q", n, last)
	}
}

func TestNilBarIgnoresCalls(t *testing.T) {
	var b *Bar
	b.Set(1, "x")
	b.SetTotal(3)
	b.Done()
	if b.Status() != "" {
		t.Error("nil bar has a status")
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 185 * time.Second: "3m05s", 2*time.Hour + 7*time.Minute + 30*time.Second: "2h07m",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
	}
}

// TestCounterRateFromCreation: a Counter's bar appears on the first
// report, with the rate measured from when the stage began.
func TestCounterRateFromCreation(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, false, c.now)
	ct := o.Counter("distill", "samples", 4)
	if buf.Len() != 0 {
		t.Fatalf("a Counter wrote before its first report: %q", buf.String())
	}
	c.t = c.t.Add(8 * time.Second)
	ct.Update(1, 10)
	ct.Done()
	if got, want := buf.String(), "distill: 4/40 samples (10%), 0.500 samples/s, ETA 1m12s\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	(&Counter{}).Done() // never updated: nothing to end
}

// TestTerminalRedrawsAtMostEveryTenthSecond: fast steps do not flood the
// terminal; the last step is always drawn.
func TestTerminalRedrawsAtMostEveryTenthSecond(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, true, c.now)
	b := o.Start("sft", "steps", 0, 1000)
	for i := int64(1); i <= 1000; i++ {
		c.t = c.t.Add(time.Millisecond)
		b.Set(i, "")
	}
	// Start, then every 100 ms of the 1 s, the last step included.
	if n := strings.Count(buf.String(), clearLine); n != 11 {
		t.Errorf("%d redraws, want 11", n)
	}
	if !strings.HasSuffix(buf.String(), "sft: 1000/1000 steps (100%), 1000 steps/s, took 1s") {
		t.Errorf("last draw %q", buf.String()[strings.LastIndex(buf.String(), clearLine):])
	}
}

// TestPlainShortStageLogsFirstAndLast: a stage of a few seconds writes its
// first and its last line only.
func TestPlainShortStageLogsFirstAndLast(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	o := NewWith(&buf, false, c.now)
	b := o.Start("validation-sft", "prompts", 0, 12)
	for i := int64(1); i <= 12; i++ {
		c.t = c.t.Add(200 * time.Millisecond)
		b.Set(i, "")
	}
	b.Done()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "validation-sft: 1/12") || !strings.HasPrefix(lines[1], "validation-sft: 12/12") {
		t.Errorf("lines %q, want the first and the last", lines)
	}
}
