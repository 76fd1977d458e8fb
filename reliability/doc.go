// Package reliability holds the suite-level reliability tests of issue 8:
// real service binaries on loopback, killed and restarted under load, with
// their final state compared to an undisturbed run.
package reliability
