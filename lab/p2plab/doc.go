// Package p2plab tests, in the namespace lab (prefix pgp2p), what
// peer-to-peer programs need from passgate's NAT, with tools nobody here
// wrote and a client of our own as a second opinion, under each of the
// three filtering settings:
//
//   - coturn's turnserver on srv1, on its two addresses, and its
//     turnutils_natdiscovery on lan1 (RFC 5780): endpoint-independent
//     mapping, the configured filtering, and its hairpinning test (which
//     sends from a second socket to the first one's mapping: through two
//     NATs that succeeds only under endpoint-independent filtering, so it
//     is asserted to succeed there and to fail under the other two);
//   - an RFC 5780 client built on github.com/pion/stun, run as this test
//     binary in lan1: the same mapping and filtering, and the self-probe
//     (a socket sending to its own public mapping gets the packet back
//     from that mapping);
//   - UDP hole punching between lan1 and lan2, each sending to the other's
//     public mapping learnt from the STUN server: each receives the
//     other's packets from the other's public endpoint;
//   - TCP simultaneous open between lan1 and lan2 through the hairpin,
//     from ports that first reached the STUN server over TCP;
//   - an ICMP error about a hairpinned datagram: two sockets of lan1 punch
//     a hole, one closes, and the kernel's port unreachable for the
//     other's next datagram comes back to it (its connected socket is
//     refused);
//   - non-IKE UDP from port 500 on lan1 and lan2 to srv1's port 500, each
//     answered on an outside port of its own.
//
// The tests need root and Debian's coturn (lab/packages.txt or .ci/run);
// they are behind the lab build tag and never skip.
package p2plab
