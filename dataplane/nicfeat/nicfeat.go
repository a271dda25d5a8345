// Package nicfeat reads and switches a network interface's features (what
// `ethtool -k` lists and `ethtool -K` changes) through the SIOCETHTOOL
// ioctls ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS, ETHTOOL_GFEATURES and
// ETHTOOL_SFEATURES: the kernel names each feature bit in its string set
// ETH_SS_FEATURES ("rx-gro", "rx-lro", ...) and reports four bit words per
// 32 features: available (the driver lets it change), requested (what was
// asked), active (what is on) and never changed (fixed by the stack).
//
// passgate uses it to turn off, at start, the receive offloads that hand
// AF_PACKET and AF_XDP frames the engine cannot forward (RxOffloads), and
// to turn back on, at exit, exactly those it turned off.
package nicfeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RxOffloads are the receive features that make the kernel hand passgate
// frames it cannot forward: GRO, LRO, hardware GRO, GRO lists and UDP GRO
// forwarding merge segments into frames larger than the MTU (which the
// drivers' Send refuses, as tx_bad_frame); VLAN tag stripping (C-tag and
// S-tag) takes the tag out of the frame, so a tagged frame would look like
// an untagged one.
var RxOffloads = []string{
	"rx-gro", "rx-lro", "rx-gro-hw", "rx-gro-list", "rx-udp-gro-forwarding",
	"rx-vlan-hw-parse", "rx-vlan-stag-hw-parse",
}

// Sizes of the kernel's structures (include/uapi/linux/ethtool.h).
const (
	ethSSFeatures  = 4  // ETH_SS_FEATURES
	gstringLen     = 32 // ETH_GSTRING_LEN
	ssetInfoLen    = 20 // ethtool_sset_info with one data word
	gstringsHdrLen = 12 // ethtool_gstrings before data
	featuresHdrLen = 8  // ethtool_[gs]features before the blocks
	getBlockLen    = 16 // ethtool_get_features_block
	setBlockLen    = 8  // ethtool_set_features_block
	maxWords       = 64 // bounds what a kernel's answer may claim
)

// State is one feature's four bits.
type State struct {
	Available    bool // the driver lets it change (hw_features)
	Requested    bool // asked for (wanted_features)
	Active       bool // on
	NeverChanged bool // fixed by the stack whatever the driver says
}

// Fixed reports whether the feature cannot be changed, as ethtool's
// "[fixed]" says.
func (s State) Fixed() bool { return !s.Available || s.NeverChanged }

// Features are an interface's features as ETHTOOL_GFEATURES reported them.
type Features struct {
	names  []string
	blocks [][4]uint32 // available, requested, active, never_changed
}

// Words is how many 32-bit words of features the kernel reported.
func (f *Features) Words() int { return len(f.blocks) }

// Bit is the bit number of the named feature, -1 if the kernel has none
// by that name.
func (f *Features) Bit(name string) int {
	for i, n := range f.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Lookup is the state of the named feature; ok is false if the kernel
// does not know it (or reported no word for its bit).
func (f *Features) Lookup(name string) (s State, ok bool) {
	bit := f.Bit(name)
	if bit < 0 || bit/32 >= len(f.blocks) {
		return State{}, false
	}
	b, m := f.blocks[bit/32], uint32(1)<<(bit%32)
	return State{Available: b[0]&m != 0, Requested: b[1]&m != 0, Active: b[2]&m != 0, NeverChanged: b[3]&m != 0}, true
}

// parseSsetCount reads the number of strings in ETH_SS_FEATURES from an
// ETHTOOL_GSSET_INFO answer.
func parseSsetCount(b []byte) (int, error) {
	if len(b) < ssetInfoLen {
		return 0, errors.New("short sset info")
	}
	if binary.NativeEndian.Uint64(b[8:])&(1<<ethSSFeatures) == 0 {
		return 0, errors.New("no feature strings")
	}
	n := int(binary.NativeEndian.Uint32(b[16:]))
	if n <= 0 || n > 32*maxWords {
		return 0, fmt.Errorf("%d feature strings", n)
	}
	return n, nil
}

// parseStrings reads the names of an ETHTOOL_GSTRINGS answer: n strings of
// ETH_GSTRING_LEN bytes, each ended by a NUL or by its length.
func parseStrings(b []byte, n int) ([]string, error) {
	if len(b) < gstringsHdrLen {
		return nil, errors.New("short strings")
	}
	got := int(binary.NativeEndian.Uint32(b[8:]))
	if got > n || len(b) < gstringsHdrLen+got*gstringLen {
		return nil, fmt.Errorf("%d strings in an answer of %d bytes for %d", got, len(b), n)
	}
	names := make([]string, got)
	for i := range names {
		s := b[gstringsHdrLen+i*gstringLen:][:gstringLen]
		for j, c := range s {
			if c == 0 {
				s = s[:j]
				break
			}
		}
		names[i] = string(s)
	}
	return names, nil
}

// parseFeatures reads an ETHTOOL_GFEATURES answer whose buffer held words
// blocks.
func parseFeatures(b []byte, words int) ([][4]uint32, error) {
	if len(b) < featuresHdrLen {
		return nil, errors.New("short features")
	}
	n := int(binary.NativeEndian.Uint32(b[4:]))
	if n <= 0 || n > words || len(b) < featuresHdrLen+n*getBlockLen {
		return nil, fmt.Errorf("%d feature words in an answer of %d bytes for %d", n, len(b), words)
	}
	blocks := make([][4]uint32, n)
	for i := range blocks {
		for j := range 4 {
			blocks[i][j] = binary.NativeEndian.Uint32(b[featuresHdrLen+i*getBlockLen+4*j:])
		}
	}
	return blocks, nil
}

// setRequest is the ETHTOOL_SFEATURES buffer of words blocks that asks for
// each bit of want on (true) or off, leaving the others as they are.
func setRequest(words int, want map[int]bool) []byte {
	b := make([]byte, featuresHdrLen+words*setBlockLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_SFEATURES)
	binary.NativeEndian.PutUint32(b[4:], uint32(words))
	for bit, on := range want {
		if bit < 0 || bit/32 >= words {
			continue
		}
		off, m := featuresHdrLen+bit/32*setBlockLen, uint32(1)<<(bit%32)
		binary.NativeEndian.PutUint32(b[off:], binary.NativeEndian.Uint32(b[off:])|m)
		if on {
			binary.NativeEndian.PutUint32(b[off+4:], binary.NativeEndian.Uint32(b[off+4:])|m)
		}
	}
	return b
}

// ifreqData is struct ifreq with ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool runs one SIOCETHTOOL command on iface with buf as its structure
// (the command in its first word) and returns the ioctl's result.
func ethtool(fd int, iface string, buf []byte) (uintptr, error) {
	if len(iface) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", iface)
	}
	ifr := ifreqData{data: unsafe.Pointer(&buf[0])}
	copy(ifr.name[:], iface)
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

func socket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket for ethtool: %w", err)
	}
	return fd, nil
}

// Get reads iface's features.
func Get(iface string) (*Features, error) {
	fd, err := socket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return get(fd, iface)
}

func get(fd int, iface string) (*Features, error) {
	b := make([]byte, ssetInfoLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GSSET_INFO)
	binary.NativeEndian.PutUint64(b[8:], 1<<ethSSFeatures)
	if _, err := ethtool(fd, iface, b); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GSSET_INFO: %w", iface, err)
	}
	n, err := parseSsetCount(b)
	if err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GSSET_INFO: %w", iface, err)
	}
	b = make([]byte, gstringsHdrLen+n*gstringLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(b[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(b[8:], uint32(n))
	if _, err := ethtool(fd, iface, b); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GSTRINGS: %w", iface, err)
	}
	f := &Features{}
	if f.names, err = parseStrings(b, n); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GSTRINGS: %w", iface, err)
	}
	words := (n + 31) / 32
	b = make([]byte, featuresHdrLen+words*getBlockLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(b[4:], uint32(words))
	if _, err := ethtool(fd, iface, b); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GFEATURES: %w", iface, err)
	}
	if f.blocks, err = parseFeatures(b, words); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_GFEATURES: %w", iface, err)
	}
	return f, nil
}

// Set asks for the named features on (true) or off on iface and returns
// its features as they are afterwards; a feature the kernel does not know
// is an error. A driver may refuse a change without failing the call:
// compare what is returned.
func Set(iface string, want map[string]bool) (*Features, error) {
	fd, err := socket()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	f, err := get(fd, iface)
	if err != nil {
		return nil, err
	}
	bits := make(map[int]bool, len(want))
	for name, on := range want {
		bit := f.Bit(name)
		if bit < 0 {
			return nil, fmt.Errorf("%s: no feature %q", iface, name)
		}
		bits[bit] = on
	}
	if _, err := ethtool(fd, iface, setRequest(f.Words(), bits)); err != nil {
		return nil, fmt.Errorf("%s: ETHTOOL_SFEATURES: %w", iface, err)
	}
	return get(fd, iface)
}

// Change is what Disable found, and did, for one feature on one interface.
type Change struct {
	Iface, Feature string
	Before, After  bool // active at start, and after Disable
	Fixed          bool // the driver or the stack does not let it change
	// Changed: Disable turned it off, and Restore turns it back on.
	Changed bool
}

// Inspect reports the state of each of names on iface the kernel knows (a
// name it does not know is left out), changing nothing.
func Inspect(iface string, names []string) ([]Change, error) {
	f, err := Get(iface)
	if err != nil {
		return nil, err
	}
	return inspect(f, iface, names), nil
}

func inspect(f *Features, iface string, names []string) []Change {
	var out []Change
	for _, n := range names {
		if s, ok := f.Lookup(n); ok {
			out = append(out, Change{Iface: iface, Feature: n, Before: s.Active, After: s.Active, Fixed: s.Fixed()})
		}
	}
	return out
}

// Disable turns off each of names that is on and can change on iface, and
// reports every one the kernel knows, as Inspect. Only a feature found on
// and turned off is marked Changed: one found off is not this run's to
// turn on (unless a state file says an earlier run now gone turned it off:
// AdoptChanges). Before it changes anything it calls before (if not nil)
// with the features it is about to turn off (maybe none), for the caller
// to record them (StateDir.Write); an error from before is returned and
// nothing changed.
func Disable(iface string, names []string, before func(off []string) error) ([]Change, error) {
	f, err := Get(iface)
	if err != nil {
		return nil, err
	}
	out := inspect(f, iface, names)
	want := map[string]bool{}
	var off []string
	for _, c := range out {
		if c.Before && !c.Fixed {
			want[c.Feature] = false
			off = append(off, c.Feature)
		}
	}
	if before != nil {
		if err := before(off); err != nil {
			return out, err
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	after, err := Set(iface, want)
	if err != nil {
		return out, err
	}
	for i := range out {
		c := &out[i]
		if _, asked := want[c.Feature]; asked {
			s, _ := after.Lookup(c.Feature)
			c.After = s.Active
			c.Changed = !s.Active
		}
	}
	return out, nil
}

// Restore turns back on the features of cs marked Changed (all on one
// interface or several) and returns what it turned on.
func Restore(cs []Change) ([]Change, error) {
	byIface := map[string]map[string]bool{}
	var order []string
	for _, c := range cs {
		if !c.Changed {
			continue
		}
		if byIface[c.Iface] == nil {
			byIface[c.Iface] = map[string]bool{}
			order = append(order, c.Iface)
		}
		byIface[c.Iface][c.Feature] = true
	}
	var done []Change
	var errs []error
	for _, iface := range order {
		after, err := Set(iface, byIface[iface])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range cs {
			if c.Changed && c.Iface == iface {
				s, _ := after.Lookup(c.Feature)
				c.Before, c.After = c.After, s.Active
				done = append(done, c)
			}
		}
	}
	return done, errors.Join(errs...)
}
