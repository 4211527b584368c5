// Package progress shows how far a long stage has come: a bar with items
// done of total, rate and ETA redrawn in place on a terminal, and plain
// lines at every tenth of the stage (and at least every half minute) when
// the output is a log file or a pipe, so that a run is never silent for
// minutes and a log stays readable.
//
// An Output owns one writer. Log lines written through it (it is an
// io.Writer) appear above the bar instead of breaking it, so a command
// routes both its log and its bars through the same Output.
package progress
