"""``apipeline serve --app chatbot``: bad options are usage errors (exit 2) before any model loads."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pitch", "3"], "--voice-changer"),
        (["--voice", "xx-nowhere"], "xx-nowhere"),
        (["--voice-changer", "--pitch", "99"], "pitch"),
        (["--set", "pitch=3"], "--app chatbot takes no"),
    ],
)
def test_serve_refuses_bad_chatbot_options_before_any_model_loads(argv: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "apipeline", "serve", "--app", "chatbot", "--port", "0", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
