// Package te is X-Lane's traffic-engineering engine: the network model of
// the paper's §3.1 and Appendix A.1, the adjustment algorithm X-ADJ (Alg. 1,
// extended with non-preemptive blocking and sub-lane response-time analysis),
// the tree heuristic X-OPT (Alg. 2), and an incremental engine that admits,
// changes and releases tunnels.
//
// The package is pure: no I/O, no clocks, no goroutines. Callers (the
// controller daemon, the CLI, the simulator) feed it topologies and requests
// and act on the tunnels and changes it returns. docs/te.md gives the exact
// formulas and why they are sound.
package te
