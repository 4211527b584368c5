// Package retry runs an attempt again with exponential back-off until it
// succeeds, fails permanently, runs out of attempts or its context ends:
// the loop every HTTP client in the project (eval endpoints, red-teaming
// generators) needs, written once.
package retry
