#!/usr/bin/python3
"""Bulk TCP for the grolab test.

bulk.py serve PORT N          send N bytes to each client, then close
bulk.py fetch HOST PORT SECS  read to the end, for at most SECS seconds, and
                              print {"bytes", "sha256", "seconds", "eof"}

The bytes are SHA-256("passgate") repeated, so the test can hash what
should arrive without asking the server.
"""
import hashlib
import json
import socket
import sys
import threading
import time

BLOCK = hashlib.sha256(b"passgate").digest() * 2048  # 64 KiB


def send(c, n):
    try:
        sent = 0
        while sent < n:
            k = min(len(BLOCK), n - sent)
            c.sendall(BLOCK[:k])
            sent += k
    except OSError:
        pass  # the client gave up (the stalled case)
    finally:
        c.close()


def serve(port, n):
    # A thread per client: a connection whose client gave up while no
    # router forwarded its RST stays blocked in sendall, and must not keep
    # the next client waiting.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=send, args=(c, n), daemon=True).start()


def fetch(host, port, secs):
    start = time.monotonic()
    for _ in range(20):
        try:
            c = socket.create_connection((host, port), timeout=3)
            break
        except OSError:
            time.sleep(0.3)
    else:
        sys.exit("cannot connect")
    h, n, eof = hashlib.sha256(), 0, False
    while True:
        left = secs - (time.monotonic() - start)
        if left <= 0:
            break
        c.settimeout(left)
        try:
            d = c.recv(1 << 16)
        except socket.timeout:
            break
        if not d:
            eof = True
            break
        h.update(d)
        n += len(d)
    c.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(),
                      "seconds": round(time.monotonic() - start, 3), "eof": eof}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "fetch":
        fetch(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: bulk.py serve PORT N | fetch HOST PORT SECS")
