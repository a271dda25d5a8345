#!/usr/bin/python3
"""Attack and probe tools for passgate's hardening lab tests.

Servers print "ready" once bound and serve until killed. Clients print
one JSON object on stdout and exit. Every count and wait is bounded.

  udp-echo ADDR PORT             echo every datagram back
  tcp-echo ADDR PORT             echo every line on every connection
  udp-forged DST PORT COUNT NET  COUNT UDP datagrams to DST:PORT from forged
                                 sources NET.100-NET.249, random ports
  syn-flood DST PORT COUNT NET   COUNT TCP SYNs to DST:PORT from forged
                                 sources NET.100-NET.249, random ports
  rst SRC SPORT DST DPORT        one RST with a random sequence number
  ack-rst SRC SPORT DST DPORT    an ACK with a random sequence number and
                                 acknowledgement, then an RST with that
                                 sequence number
  udp-probe DST PORT N           N datagrams from N sockets, one answer each:
                                 {"answered": k}
  tcp-probe DST PORT N TIMEOUT   N connections, each sends a line and reads
                                 its echo: {"connected": k, "errors": [...]}
  tcp-hold DST PORT SECONDS      connect, exchange a line, print
                                 "exchanged LOCALPORT", wait SECONDS, exchange
                                 another: {"second": "ok"|error}
  udp-frags SRC SPORT DST DPORT ID BYTE SIZE DELAY
                                 one UDP datagram of SIZE bytes BYTE (hex), IP
                                 ID ID, in fragments of at most 1000 bytes:
                                 after DELAY s the first, 1 s later the rest:
                                 {"sent": fragments}
  udp-collect ADDR PORT N SECONDS
                                 (a server) the first N datagrams within
                                 SECONDS, each "BYTE*LEN" if uniform, else
                                 "mixed*LEN": {"got": [...]}
"""
import json
import random
import socket
import struct
import sys
import threading
import time


def ready():
    print("ready", flush=True)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip_packet(src, dst, proto, l4):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), random.randint(0, 65535), 0, 64, proto, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def l4sum(src, dst, proto, l4):
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(l4))
    return csum(pseudo + l4)


def udp(src, sport, dst, dport, payload):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4sum(src, dst, 17, u) or 0xFFFF
    return ip_packet(src, dst, 17, u[:6] + struct.pack("!H", c) + u[8:])


def tcp(src, sport, dst, dport, seq, ack, flags):
    t = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    c = l4sum(src, dst, 6, t)
    return ip_packet(src, dst, 6, t[:16] + struct.pack("!H", c) + t[18:])


def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def forged(net):
    return "%s.%d" % (net, random.randint(100, 249))


def flood(build, dst, count):
    s = raw()
    sent = 0
    for i in range(count):
        p, src = build(i)
        try:
            s.sendto(p, (dst, 0))
            sent += 1
        except OSError:
            time.sleep(0.001)
        if i % 200 == 199:
            time.sleep(0.01)  # let the router's rings keep up: bounded, not a race
    print(json.dumps({"sent": sent}), flush=True)


def udp_forged(dst, port, count, net):
    def build(i):
        src = forged(net)
        return udp(src, random.randint(1024, 65535), dst, int(port), b"forged"), src
    flood(build, dst, int(count))


def syn_flood(dst, port, count, net):
    def build(i):
        src = forged(net)
        return tcp(src, random.randint(1024, 65535), dst, int(port), random.getrandbits(32), 0, 0x02), src
    flood(build, dst, int(count))


def rst(src, sport, dst, dport):
    seq = random.getrandbits(32)
    raw().sendto(tcp(src, int(sport), dst, int(dport), seq, 0, 0x04), (dst, 0))
    print(json.dumps({"seq": seq}), flush=True)


def ack_rst(src, sport, dst, dport):
    seq, ack = random.getrandbits(32), random.getrandbits(32)
    s = raw()
    s.sendto(tcp(src, int(sport), dst, int(dport), seq, ack, 0x10), (dst, 0))
    time.sleep(0.05)
    s.sendto(tcp(src, int(sport), dst, int(dport), seq, 0, 0x04), (dst, 0))
    print(json.dumps({"seq": seq}), flush=True)


def udp_frags(src, sport, dst, dport, ident, byte, size, delay):
    whole = udp(src, int(sport), dst, int(dport), bytes([int(byte, 16)]) * int(size))
    hdr, body = bytearray(whole[:20]), whole[20:]
    frags = []
    for off in range(0, len(body), 976):
        chunk = body[off:off + 976]
        h = bytearray(hdr)
        more = 0x2000 if off + len(chunk) < len(body) else 0
        struct.pack_into("!HHH", h, 2, 20 + len(chunk), int(ident), more | off // 8)
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, csum(bytes(h)))
        frags.append(bytes(h) + chunk)
    s = raw()
    time.sleep(float(delay))
    s.sendto(frags[0], (dst, 0))
    time.sleep(1)
    for f in frags[1:]:
        s.sendto(f, (dst, 0))
    print(json.dumps({"sent": len(frags)}), flush=True)


def udp_collect(addr, port, n, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    ready()
    got, end = [], time.time() + float(seconds)
    while len(got) < int(n) and time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            d = s.recv(65535)
        except socket.timeout:
            break
        kind = "%02x" % d[0] if d and d == d[:1] * len(d) else "mixed"
        got.append("%s*%d" % (kind, len(d)))
    print(json.dumps({"got": sorted(got)}), flush=True)


def udp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    ready()
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def tcp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1024)
    ready()

    def serve(c):
        try:
            f = c.makefile("rwb")
            for line in f:
                f.write(line)
                f.flush()
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def udp_probe(dst, port, n):
    answered = 0
    for i in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.sendto(b"probe %d" % i, (dst, int(port)))
            if s.recv(100) == b"probe %d" % i:
                answered += 1
        except OSError:
            pass
        s.close()
    print(json.dumps({"answered": answered}), flush=True)


def exchange(c, line):
    c.sendall(line)
    got = b""
    while not got.endswith(b"\n"):
        b = c.recv(100)
        if not b:
            raise OSError("closed")
        got += b
    if got != line:
        raise OSError("echo %r" % got)


def tcp_probe(dst, port, n, timeout):
    ok, errors = 0, []
    for i in range(int(n)):
        try:
            c = socket.create_connection((dst, int(port)), timeout=float(timeout))
            exchange(c, b"probe %d\n" % i)
            c.close()
            ok += 1
        except OSError as e:
            errors.append(str(e))
    print(json.dumps({"connected": ok, "errors": errors}), flush=True)


def tcp_hold(dst, port, seconds):
    c = socket.create_connection((dst, int(port)), timeout=5)
    exchange(c, b"one\n")
    print("exchanged %d" % c.getsockname()[1], flush=True)
    time.sleep(float(seconds))
    c.settimeout(8)
    try:
        exchange(c, b"two\n")
        res = "ok"
    except OSError as e:
        res = str(e) or type(e).__name__
    print(json.dumps({"second": res}), flush=True)


CMDS = {
    "udp-echo": udp_echo, "tcp-echo": tcp_echo, "udp-forged": udp_forged,
    "syn-flood": syn_flood, "rst": rst, "ack-rst": ack_rst, "udp-probe": udp_probe,
    "tcp-probe": tcp_probe, "tcp-hold": tcp_hold, "udp-frags": udp_frags,
    "udp-collect": udp_collect,
}

if __name__ == "__main__":
    CMDS[sys.argv[1]](*sys.argv[2:])
