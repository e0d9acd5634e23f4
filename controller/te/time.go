package te

// Time is a duration or instant in picoseconds. The analysis and the
// simulator share this unit and the rounding rules below, so a bound the
// analysis computes is exactly comparable to what the simulator observes.
type Time int64

const (
	Picosecond  Time = 1
	Nanosecond  Time = 1000
	Microsecond Time = 1000 * Nanosecond
	Millisecond Time = 1000 * Microsecond
	Second      Time = 1000 * Millisecond
)

// NsToTime converts nanoseconds to Time.
func NsToTime(ns int64) Time { return Time(ns) * Nanosecond }

// CeilNs rounds t up to whole nanoseconds (for upper bounds).
func (t Time) CeilNs() int64 {
	if t <= 0 {
		return int64(t) / 1000
	}
	return (int64(t) + 999) / 1000
}

// FloorNs rounds t down to whole nanoseconds (for lower bounds).
func (t Time) FloorNs() int64 {
	if t >= 0 {
		return int64(t) / 1000
	}
	return -((-int64(t) + 999) / 1000)
}

// TxTime is the serialization time of n bytes at bw bits per second,
// rounded up to the picosecond: the simulator transmits for exactly this
// long, so rounding up keeps the analysis an upper bound.
func TxTime(n int64, bwBps int64) Time {
	if n <= 0 {
		return 0
	}
	// n*8e12 fits in int64 for any frame below 1 MB, which validation enforces.
	num := n * 8 * int64(Second)
	return Time((num + bwBps - 1) / bwBps)
}
