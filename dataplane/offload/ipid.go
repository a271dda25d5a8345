package offload

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"passgate/nat"
)

// IDs is the IP identification state the programs share with the engine
// (nat/ipid.go, RFC 7857 section 10), laid out as the ID map's one value:
// a datagram with DF clear whose source an entry rewrites gets the low 16
// bits of Counters[nat.IPIDBucket(Key, its new destination, its
// protocol)] after an atomic add of 1, as the engine's do, so that IDs
// toward one destination are one sequence whether the engine or a
// program translates them. The engine takes IDs from Counters too
// (nat.Engine.ShareIPIDs, which gives Key).
type IDs struct {
	Counters [nat.IPIDBuckets]uint32
	Key      uint64
}

// Offsets in the ID map's value.
const (
	idsKey  = 4 * nat.IPIDBuckets
	idsSize = idsKey + 8
)

// Next takes the ID of a datagram toward dst for proto, as the programs
// do.
func (s *IDs) Next(dst [4]byte, proto uint8) uint16 {
	b := nat.IPIDBucket(s.Key, binary.BigEndian.Uint32(dst[:]), proto)
	return uint16(atomic.AddUint32(&s.Counters[b], 1))
}

// IDMap is the BPF array map holding IDs, one value, made with
// BPF_F_MMAPABLE and mapped into passgate: the programs reach the value
// directly (a map value address in the instructions, no lookup) and add
// to its counters atomically, the engine through the mapping.
type IDMap struct {
	m   *ebpf.Map
	ids *IDs
}

// NewIDMap makes the ID map, zeroed, and maps it. The mapping lasts as
// long as the process (the engine may hold it: Close leaves it).
func NewIDMap() (*IDMap, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "passgate_ipid", Type: ebpf.Array,
		KeySize: 4, ValueSize: idsSize, MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		return nil, fmt.Errorf("offload: IP ID map: %w", err)
	}
	pg := os.Getpagesize()
	mem, err := unix.Mmap(m.FD(), 0, (idsSize+pg-1)/pg*pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("offload: IP ID map: mmap: %w", err)
	}
	return &IDMap{m: m, ids: (*IDs)(unsafe.Pointer(&mem[0]))}, nil
}

// Map is the map, for the programs' instructions.
func (d *IDMap) Map() *ebpf.Map { return d.m }

// IDs is the map's value, as mapped.
func (d *IDMap) IDs() *IDs { return d.ids }

// Close closes the map's descriptor; its value stays mapped.
func (d *IDMap) Close() error {
	if d == nil || d.m == nil {
		return nil
	}
	err := d.m.Close()
	d.m = nil
	return err
}
