// Package guardlab holds the namespace-lab tests of passgate's data-plane
// limits under attack (build tag lab): a LAN host flooding with forged LAN
// source addresses while another opens flows, a SYN flood to a forwarded
// port while the LAN host behind it connects out, and a blind RST from the
// WAN while the connection lives on past the closed-TCP timeout. The
// attacks are testdata/guard.py, bounded in count. TestIPIDFragments sends
// two LAN hosts' fragmented datagrams with the same IP ID to one server.
// The package has no code besides its tests.
package guardlab
