package app

// backlogGCPercent is the garbage collector target (GOGC) while a backlog
// of timers fires in the pipeline. Firing allocates about 6 KB of
// short-lived garbage per timer (bbolt's cursors and node growth, decoded
// clocks, encoded records) against a live heap of two batches, so at the
// default of 100 the collector took about a third of the CPU of a 1M-timer
// restart on two cores; at 400 it runs a quarter as often, for a heap that
// peaks at five times the live one instead of twice (a memory limit,
// GOMEMLIMIT, still caps it). Restored as soon as the backlog is done.
const backlogGCPercent = 400
