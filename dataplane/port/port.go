// Package port is the small interface between passgate's router and its
// packet drivers (dataplane/afpacket, dataplane/afxdp): a port receives and
// sends batches of raw Ethernet frames on one interface, counts what it
// moved and what it lost, by reason, and closes.
//
// The contract every driver keeps:
//   - Recv fills frames (and flags) with up to len(frames) frames and
//     returns how many. The slices point into the driver's memory, may be
//     rewritten in place and passed to Send on any Port, and stay valid
//     until the next Recv or Close on the same Port. With nothing to
//     receive it waits a bounded time and returns 0, nil; after Close it
//     returns net.ErrClosed.
//   - Send transmits complete Ethernet frames (no FCS) in order and returns
//     how many the kernel took. The driver copies them before returning, so
//     the caller may reuse the buffers at once. Frames it refuses are
//     counted in Stats by reason, not returned as errors; the error is for
//     failures of the whole port (interface down) and net.ErrClosed.
//   - One goroutine Recvs at a time; Send may be called from several
//     goroutines only where the driver says so (Shared); Stats and Close
//     are safe from any goroutine.
package port

import "golang.org/x/sys/unix"

// CsumNotReady is set in a Recv flag when the frame's transport checksum
// has not been computed yet (the sender relied on checksum offload and the
// frame never left the host). It is AF_PACKET's TP_STATUS_CSUMNOTREADY bit;
// other drivers set it with the same meaning or not at all.
const CsumNotReady = unix.TP_STATUS_CSUMNOTREADY

// CsumUnknown is set in a Recv flag by drivers that cannot tell whether
// the transport checksum was left to offload (AF_XDP copies the frame but
// not the kernel's checksum state). The caller checks the checksum field
// itself: a field holding just the pseudo-header sum was left partial.
const CsumUnknown = 1 << 30

// Port is one driver socket on one interface.
type Port interface {
	Recv(frames [][]byte, flags []uint32) (int, error)
	Send(frames [][]byte) (int, error)
	Stats() Stats
	Close() error
}

// Stats are a port's cumulative counters. RxDrops and TxErrors are the
// totals; the fields after them say why, and add up to them.
type Stats struct {
	// RxPackets counts frames the kernel delivered to the port.
	RxPackets uint64 `json:"rx_packets"`
	// RxDrops counts frames the kernel dropped before the port saw them.
	RxDrops uint64 `json:"rx_drops"`
	// RxFreezes counts how often AF_PACKET's ring filled up.
	RxFreezes uint64 `json:"rx_freezes"`
	// TxPackets counts frames the kernel accepted from Send.
	TxPackets uint64 `json:"tx_packets"`
	// TxErrors counts frames Send gave up on.
	TxErrors uint64 `json:"tx_errors"`

	// RxRingFull: the receive ring had no room (AF_PACKET's tp_drops,
	// AF_XDP's rx_ring_full).
	RxRingFull uint64 `json:"rx_ring_full,omitzero"`
	// RxNoBuffer: AF_XDP's fill ring was empty, no buffer to receive into
	// (the receiver is behind: its frames wait in the RX ring).
	RxNoBuffer uint64 `json:"rx_no_buffer,omitzero"`
	// RxInvalid: AF_XDP descriptors the kernel found invalid, and frames
	// too long for a UMEM frame.
	RxInvalid uint64 `json:"rx_invalid,omitzero"`
	// TxFull: the kernel (or the TX ring) had no room, still so after
	// retrying (EAGAIN, ENOBUFS, a full AF_XDP TX ring or no free buffer).
	TxFull uint64 `json:"tx_full,omitzero"`
	// TxBadFrame: shorter than an Ethernet header, longer than MTU+14, or
	// refused by the device (EMSGSIZE, EINVAL, AF_XDP tx_invalid_descs).
	TxBadFrame uint64 `json:"tx_bad_frame,omitzero"`
	// TxDown: lost to an error of the whole port (ENETDOWN, ENXIO).
	TxDown uint64 `json:"tx_down,omitzero"`
}

// Add adds o's counters to s.
func (s *Stats) Add(o Stats) {
	s.RxPackets += o.RxPackets
	s.RxDrops += o.RxDrops
	s.RxFreezes += o.RxFreezes
	s.TxPackets += o.TxPackets
	s.TxErrors += o.TxErrors
	s.RxRingFull += o.RxRingFull
	s.RxNoBuffer += o.RxNoBuffer
	s.RxInvalid += o.RxInvalid
	s.TxFull += o.TxFull
	s.TxBadFrame += o.TxBadFrame
	s.TxDown += o.TxDown
}

// Reasons calls fn for each loss reason with its count, in a fixed order.
func (s *Stats) Reasons(fn func(name string, v uint64)) {
	fn("rx_ring_full", s.RxRingFull)
	fn("rx_no_buffer", s.RxNoBuffer)
	fn("rx_invalid", s.RxInvalid)
	fn("tx_full", s.TxFull)
	fn("tx_bad_frame", s.TxBadFrame)
	fn("tx_down", s.TxDown)
}
