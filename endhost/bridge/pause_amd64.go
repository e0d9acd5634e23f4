package bridge

// SpinWait tells the CPU that the caller is busy-waiting on a ring (the
// x86 PAUSE instruction): a polling loop calls it when it found nothing,
// so that a hyperthread sharing the core — possibly the other end of the
// ring — gets the core's execution units meanwhile.
func SpinWait()
