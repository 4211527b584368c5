// Package dptest is test support for distributed trainers: it runs one
// trainer as a TP×DP group of ranks, each a goroutine of the test process
// with its own context, connected by the communicators the test makes
// (dist.ConnectLocal). The trainers' data-parallel and tensor-parallel
// tests share it instead of each writing the goroutines, the groups'
// wiring and the interrupt of one rank.
//
// It takes the connect function as a parameter rather than importing dist
// because internal is the bottom layer of design.md's layout.
package dptest
