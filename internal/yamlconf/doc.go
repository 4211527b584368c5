// Package yamlconf decodes YAML run configs into config structs and reports
// problems the way the user wrote the file: "x.yaml: line 3: unknown key
// "learning_rate" (did you mean "lr"?)", never Go type names. A key may be
// left out (the struct keeps its value); a list of strings may be written
// as one string; every bad key or value gives exactly one error, and all of
// them are reported at once.
package yamlconf
