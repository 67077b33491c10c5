"""``xasviz serve`` as a user starts it: a real process on the loopback."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import xasviz
from xasviz.synthetic import make_stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("what", ["results", "stack"])
def test_cli_serve_answers_on_loopback_and_stops(tmp_path, what):
    planted = make_stack(size=16, n_energy=30, n_domains=2, snr_db=30, rng=0)
    if what == "results":
        obj = xasviz.analyze(
            planted.stack,
            planted.reference,
            normalization=None,
            rank=2,
            kmeans=False,
            pte=False,
            rng=0,
        )
    else:
        obj = planted.stack
    path = tmp_path / f"{what}.nc"
    xasviz.save(obj, path)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xasviz", "-q", "serve", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/", timeout=5
                ) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert body is not None, "server did not answer within 60 s"
        assert "bokeh" in body.lower()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
