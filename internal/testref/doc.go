// Package testref locates the shared reference data (../shared/refs beside
// the repository) for conformance tests, which skip when it is absent: a
// user's fresh clone has no shared folder.
package testref
