package southbound

// ExpressDSCP is the DSCP of sub-lane 0 (EF); sub-lane s is marked
// ExpressDSCP−s. Switch egress queues classify on these values, and
// senders mark their express packets with them.
const (
	ExpressDSCP    = 46
	MaxSublanes    = 8
	BestEffortDSCP = 0
)

// DSCP is the mark a tunnel's packets carry after its first switch: its
// sub-lane's, or best effort once demoted.
func DSCP(sublane int, demoted bool) uint8 {
	if demoted || sublane < 0 || sublane >= MaxSublanes {
		return BestEffortDSCP
	}
	return uint8(ExpressDSCP - sublane)
}

// SublaneOfDSCP is the sub-lane a DSCP value marks, or -1 for best effort.
func SublaneOfDSCP(dscp uint8) int {
	if s := ExpressDSCP - int(dscp); s >= 0 && s < MaxSublanes {
		return s
	}
	return -1
}
