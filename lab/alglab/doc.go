// Package alglab holds the namespace-lab tests of passgate's application-
// level gateways: real Debian clients and servers (curl against vsftpd,
// tftp-hpa against tftpd-hpa, an RTSP client against gst-rtsp-server) talk
// through the passgate daemon running in the lab's router namespace. The
// package has no code besides its tests.
package alglab
