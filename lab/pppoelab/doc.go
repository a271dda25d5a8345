// Package pppoelab holds the lab test of passgate's PPPoE relay with real
// software: rp-pppoe's pppoe-server (Debian package pppoe) as the access
// concentrator on a WAN server, and rp-pppoe's pppoe client on two LAN
// hosts at once, through passgate running in the lab's router namespace.
//
// The kernel here has no PPP, so pppd is stood in for on both ends by
// lab/vpnlab/pppstub, which speaks PPP in async HDLC and exchanges LCP
// echoes: on the client it runs `pppoe -I eth0` on a raw pty (its client
// mode); on the server pppoe-server's -q option names a small script as
// pppd, which runs pppoe-server's `pty` command the same way. No overlay
// or private /run is needed: pppoe-server takes pppd's path as an option,
// and neither it nor the client keeps files under /run unless asked to.
package pppoelab
