// Package sim is a discrete-event, packet-level simulator of the network
// model of the paper's Appendix A.1, used to check that the bounds the te
// engine computes hold: senders emit exactly once per period from their own
// phase; every link has a strict-priority, non-preemptive egress queue per
// sub-lane plus best effort, a finite express buffer, and a per-hop delay
// between min_latency and min_latency + max_jitter. Random mode draws
// phases and delays from a seed; adversarial mode searches for the
// alignments that maximise each tunnel's latency.
package sim
