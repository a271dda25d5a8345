package afxdp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

const ethtoolGChannels = 0x3c // ETHTOOL_GCHANNELS

// Queues is how many receive queues iface has (ETHTOOL_GCHANNELS: the
// combined plus the RX-only channels); 1 where the driver does not say.
// AF_XDP binds one socket per queue, and the XDP program steers each
// frame to the socket of the queue it arrived on.
func Queues(iface string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("afxdp: socket: %w", err)
	}
	defer unix.Close(fd)
	var req struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(req.name[:], iface)
	ch := ethtoolChannels{cmd: ethtoolGChannels}
	req.data = uintptr(unsafe.Pointer(&ch))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	if errno == unix.EOPNOTSUPP || errno == unix.EINVAL {
		return 1, nil
	}
	if errno != 0 {
		return 0, fmt.Errorf("afxdp: %s: ETHTOOL_GCHANNELS: %w", iface, errno)
	}
	n := int(ch.combinedCount + ch.rxCount)
	if n < 1 {
		n = 1
	}
	return n, nil
}
