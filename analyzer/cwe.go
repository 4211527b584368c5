package analyzer

import "strings"

// cweClasses groups CWE ids that benchmarks and tools use interchangeably
// for the same weakness, so that a finding can be compared with a label
// from another detector. For example CyberSecEval labels md5/sha1 use
// CWE-328 while other tools say CWE-327, labels any use of `random`
// CWE-338 where bandit says CWE-330, and labels private keys in source
// CWE-312 rather than CWE-798. Ids not listed only match themselves.
var cweClasses = [][]string{
	{"CWE-327", "CWE-328", "CWE-326", "CWE-916"},            // weak cryptography / hashing
	{"CWE-330", "CWE-338", "CWE-335", "CWE-336", "CWE-337"}, // weak or predictable randomness
	{"CWE-798", "CWE-259", "CWE-321", "CWE-312"},            // hard-coded credentials and keys
	{"CWE-323", "CWE-329"},                                  // nonce / IV reuse
	{"CWE-94", "CWE-95", "CWE-1336"},                        // code injection
	{"CWE-78", "CWE-77", "CWE-88"},                          // command injection
	{"CWE-400", "CWE-664", "CWE-404", "CWE-772", "CWE-667"}, // resource release
	{"CWE-22", "CWE-23", "CWE-36"},                          // path traversal
	{"CWE-703", "CWE-390", "CWE-617"},                       // error handling
	{"CWE-79", "CWE-80", "CWE-116"},                         // cross-site scripting
	{"CWE-377", "CWE-379"},                                  // insecure temporary files
	{"CWE-319", "CWE-311"},                                  // cleartext transmission
}

var cweClassOf = func() map[string]int {
	m := map[string]int{}
	for i, c := range cweClasses {
		for _, id := range c {
			m[id] = i
		}
	}
	return m
}()

// EquivalentCWE reports whether two CWE ids ("CWE-327", case-insensitive)
// name the same weakness class for the purpose of comparing labels.
func EquivalentCWE(a, b string) bool {
	a, b = strings.ToUpper(strings.TrimSpace(a)), strings.ToUpper(strings.TrimSpace(b))
	if a == b {
		return true
	}
	ca, oka := cweClassOf[a]
	cb, okb := cweClassOf[b]
	return oka && okb && ca == cb
}
