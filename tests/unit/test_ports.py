"""`make ui` and `make docs` listen where asked (UI_PORT, DOCS_PORT), and a taken default moves."""
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestration.cli.ports import choose_port, is_free

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_free_port_is_used_as_given():
    with taken_port() as port:
        pass
    assert is_free(port)
    assert choose_port("UI_PORT", port, requested=True) == port


def test_a_taken_default_moves_to_a_free_port(capsys):
    with taken_port() as port:
        chosen = choose_port("UI_PORT", port, requested=False)
    assert chosen > port
    assert "UI_PORT" in capsys.readouterr().err


def test_a_taken_port_asked_for_stops_naming_the_variable():
    with taken_port() as port, pytest.raises(SystemExit, match=f"port {port} .*taken.*DOCS_PORT="):
        choose_port("DOCS_PORT", port, requested=True)


@pytest.mark.parametrize("target, variable, default", [("ui", "UI_PORT", "3000"), ("docs", "DOCS_PORT", "8080")])
def test_the_make_targets_take_their_port_from_the_variable(target, variable, default):
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", target, *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    assert f'{variable} "{default}" default' in dry_run()
    assert f'{variable} "4321" requested' in dry_run(f"{variable}=4321")
    assert "$port" in dry_run() and default not in dry_run().replace(f'"{default}"', "")


def test_make_ui_on_a_taken_port_fails_at_once_naming_the_variable():
    with taken_port() as port:
        result = subprocess.run(["make", "ui", f"UI_PORT={port}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken: choose another with UI_PORT=<port>" in result.stderr
