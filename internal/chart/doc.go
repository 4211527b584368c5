// Package chart draws the report PNGs (training curves, before/after bars)
// so that they can go on a slide as they are: a figure title, stacked
// panels that share their x alignment, each with its own title and a
// legend in a band above its axes (never over the data), axis labels with
// units, and a blank margin that nothing is drawn into.
//
// Render returns the Layout it drew (pixel rectangles of every panel's data
// area and legend, and the colour of every legend entry) so that tests can
// check the PNG itself with package charttest.
package chart
