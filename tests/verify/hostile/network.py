"""Hostile: opens network sockets (to the verifier's loopback and the internet)."""

import socket

PORT = int("__PORT__")


def train(feed):
    reached = []
    for host, port in (("127.0.0.1", PORT), ("1.1.1.1", 53), ("8.8.8.8", 443)):
        try:
            socket.create_connection((host, port), timeout=2).close()
            reached.append((host, port))
        except OSError:
            pass
    try:
        socket.getaddrinfo("example.com", 80)
        reached.append("dns")
    except OSError:
        pass
    if reached:
        print("BREACH", reached)
        raise SystemExit("BREACH")
    raise RuntimeError("blocked: no network")
