"""The port a local server (``make ui``, ``make docs``) listens on.

``python -m orchestration.cli.ports VARIABLE PORT default|requested`` prints the port to use: a
port asked for (``make ui UI_PORT=3001``) must be free, or the command stops naming the variable;
the default moves to the next free port, with a line on stderr saying so.
"""

from __future__ import annotations

import socket
import sys

HOST = "127.0.0.1"
SEARCH = 100  # ports tried after a taken default


def is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(variable: str, port: int, requested: bool, host: str = HOST) -> int:
    """The port to listen on; ``SystemExit`` with a message naming ``variable`` when none fits."""
    if not 0 < port < 65536:
        raise SystemExit(f"{variable}={port} is not a port number (1-65535)")
    if is_free(port, host):
        return port
    if requested:
        raise SystemExit(f"port {port} on {host} is taken: choose another with {variable}=<port>")
    for candidate in range(port + 1, min(port + 1 + SEARCH, 65536)):
        if is_free(candidate, host):
            print(f"port {port} is taken: using {candidate} (set {variable} to choose)", file=sys.stderr)
            return candidate
    raise SystemExit(f"ports {port}-{port + SEARCH} on {host} are taken: choose one with {variable}=<port>")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("default", "requested") or not argv[1].isdigit():
        raise SystemExit("usage: python -m orchestration.cli.ports VARIABLE PORT default|requested")
    print(choose_port(argv[0], int(argv[1]), argv[2] == "requested"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
