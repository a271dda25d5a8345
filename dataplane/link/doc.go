// Package link owns passgate's link layer: a neighbour table per interface
// that answers ARP for the router's own address, learns neighbours,
// resolves next hops (queueing a bounded number of packets while it does)
// and writes the Ethernet header of every frame passgate sends, and the
// per-worker batches of frames to send. The Ethernet and ARP views it reads
// and writes frames with are package packet's.
package link
