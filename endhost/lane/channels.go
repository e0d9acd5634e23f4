package lane

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxQueues is how many receive queues ifname uses now: the driver's
// channel counts (ETHTOOL_GCHANNELS, rx plus combined), which a NIC or a
// veth may keep below the queues it was created with; ok is false when
// the driver does not tell. It asks in the calling thread's network
// namespace.
func rxQueues(ifname string) (n int, ok bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	// struct ethtool_channels: cmd, max_rx, max_tx, max_other,
	// max_combined, rx_count, tx_count, other_count, combined_count.
	var ch [9]uint32
	ch[0] = unix.ETHTOOL_GCHANNELS
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, false
	}
	var ifr struct { // struct ifreq: the name, then the data pointer
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer // typed: the collector and stack moves see it
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ifr)
	runtime.KeepAlive(&ch)
	if e != 0 {
		return 0, false
	}
	if n := int(ch[5] + ch[8]); n > 0 {
		return n, true
	}
	return 0, false
}
