#!/usr/bin/python3
"""Small network tools for the lab's integration tests.

Servers print "ready" on stdout once bound, then serve until killed.
Clients print one JSON object on stdout and exit. Every wait is bounded.

  udp-echo ADDR PORT           echo every datagram back unchanged
  udp-reflect ADDR PORT        answer every datagram with "ADDR PORT" of its sender
  tcp-reflect ADDR PORT        answer every connection with "ADDR PORT\\n" of its peer
  udp-send DST PORT HEX [TIMEOUT]
                               send the payload HEX, wait for one answer:
                               {"local": [a, p], "reply": HEX or null,
                                "refused": true if port-unreachable came back}
  udp-eim PORT DST...          one socket sends to DST:PORT for each DST and
                               collects their reflections:
                               {"local": [a, p], "seen": {DST: "ADDR PORT" or null}}
  tcp-read DST PORT            connect and read until EOF: {"local": [a, p], "data": TEXT}
  tcp-connect DST PORT TIMEOUT try a connection: {"result": "connected"|"refused"|"timeout"|...}
  listen PORT SECONDS          listen on UDP and TCP PORT (all addresses) for
                               SECONDS: {"udp": [...senders], "tcp": [...peers]}
"""
import json
import select
import socket
import sys
import time


def ready():
    print("ready", flush=True)


def udp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    ready()
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def udp_reflect(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    ready()
    while True:
        _, peer = s.recvfrom(65535)
        s.sendto(("%s %d" % peer).encode(), peer)


def tcp_reflect(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(16)
    ready()
    while True:
        c, peer = s.accept()
        try:
            c.sendall(("%s %d\n" % peer).encode())
        finally:
            c.close()


def udp_send(dst, port, hexdata, timeout="3"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(float(timeout))
    s.connect((dst, int(port)))
    payload = bytes.fromhex(hexdata)
    reply = None
    refused = False
    # Up to three tries: the first datagram may wait on ARP.
    for _ in range(3):
        try:
            s.send(payload)
            reply = s.recv(65535).hex()
            break
        except socket.timeout:
            continue
        except ConnectionRefusedError:
            # An ICMP port-unreachable came back: no answer, say so.
            refused = True
            break
    print(json.dumps({"local": list(s.getsockname()), "reply": reply, "refused": refused}))


def udp_eim(port, *dsts):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    seen = {d: None for d in dsts}
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and any(v is None for v in seen.values()):
        for d in dsts:
            if seen[d] is None:
                s.sendto(b"which port do you see?", (d, int(port)))
        end = time.monotonic() + 1
        while time.monotonic() < end:
            r, _, _ = select.select([s], [], [], max(0, end - time.monotonic()))
            if not r:
                break
            data, peer = s.recvfrom(65535)
            if peer[0] in seen and peer[1] == int(port):
                seen[peer[0]] = data.decode(errors="replace")
    print(json.dumps({"local": list(s.getsockname()), "seen": seen}))


def tcp_read(dst, port):
    s = socket.create_connection((dst, int(port)), timeout=5)
    local = list(s.getsockname())
    chunks = []
    while True:
        b = s.recv(65535)
        if not b:
            break
        chunks.append(b)
    s.close()
    print(json.dumps({"local": local, "data": b"".join(chunks).decode(errors="replace")}))


def tcp_connect(dst, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(float(timeout))
    try:
        s.connect((dst, int(port)))
        result = "connected"
    except ConnectionRefusedError:
        result = "refused"
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = "error: %s" % e
    finally:
        s.close()
    print(json.dumps({"result": result}))


def listen(port, seconds):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", int(port)))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", int(port)))
    t.listen(16)
    ready()
    got = {"udp": [], "tcp": []}
    deadline = time.monotonic() + float(seconds)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([u, t], [], [], left)
        for sock in r:
            if sock is u:
                _, peer = u.recvfrom(65535)
                got["udp"].append("%s %d" % peer)
            else:
                c, peer = t.accept()
                got["tcp"].append("%s %d" % peer)
                c.close()
    print(json.dumps(got), flush=True)


COMMANDS = {
    "udp-echo": udp_echo,
    "udp-reflect": udp_reflect,
    "tcp-reflect": tcp_reflect,
    "udp-send": udp_send,
    "udp-eim": udp_eim,
    "tcp-read": tcp_read,
    "tcp-connect": tcp_connect,
    "listen": listen,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
