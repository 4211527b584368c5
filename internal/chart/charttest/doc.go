// Package charttest checks a PNG written by chart.Render against the
// Layout it returned: the canvas size, a blank outer margin (nothing drawn
// past the canvas edge), legends that do not overlap data areas, every
// legend entry's colour present both in its legend and in its data area,
// and no series colour anywhere else. It is test support: only tests
// import it.
package charttest
