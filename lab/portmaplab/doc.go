// Package portmaplab holds the namespace-lab tests of port mapping (PCP,
// NAT-PMP, UPnP IGD): Debian's real clients, upnpc (miniupnpc) and natpmpc,
// and a small PCP client in the test binary, ask the passgate daemon in the
// lab's router namespace for mappings; a WAN server then connects to the
// public port. The package has no code besides its tests.
package portmaplab
