// Package aggregate holds the cross-account figures that stages and health
// answer (funnels, moments of truth, backtests, replay progress) in a form
// that merges exactly: each replica of a service computes its part over the
// accounts it owns, and one function per figure turns any number of parts
// into the answer. The services call the same functions on their one part,
// and the gateway on every replica's part, so the answer of several
// replicas is, by construction, the answer of one replica holding every
// account.
//
// Counts add. Medians, percentiles and AUCs do not, so the parts carry
// their raw material: every finished stay's time in stage, every
// backtested outcome's score and component points.
package aggregate
