#!/usr/bin/env python3
"""The seed's server pattern: bind, listen(backlog), accept, read the peer, close.

    python3 examples/seed_server.py PORT BACKLOG [ADDR]

One connection at a time, no threads: what `acceptbench sweep --server` measures as
an external server (it is served when this closes it). Ends on SIGTERM or SIGINT.
"""
import signal
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: seed_server.py PORT BACKLOG [ADDR]")
    port, backlog = int(sys.argv[1]), int(sys.argv[2])
    addr = sys.argv[3] if len(sys.argv) == 4 else "127.0.0.1"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(backlog)
    print(f"seed_server listening on {addr}:{port} backlog {backlog}", flush=True)
    accepted = 0
    try:
        while True:
            conn, peer = s.accept()
            _ = peer  # the peer (ip, port) is what the seed's server extracts
            conn.close()
            accepted += 1
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        print(f"seed_server accepted {accepted}", flush=True)


if __name__ == "__main__":
    main()
