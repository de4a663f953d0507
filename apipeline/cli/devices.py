"""``apipeline devices [--json]``: the audio devices ``apipeline voice-changer --live`` can use.

Lists every device PortAudio sees with its index, input/output channels, default rate and name; ``<``
and ``>`` mark the default input and output. Pass an index or a unique part of a name to
``--input-device`` / ``--output-device``. Exit codes: 0 ok; 1 no PortAudio (the message says what to
install).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

PROG = "apipeline devices"


def add_parser(subparsers: Any) -> None:
    """Register ``devices`` on the ``apipeline`` command's subparsers."""
    p = subparsers.add_parser(
        "devices",
        help="list the audio devices (for voice-changer --live)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the devices as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from apipeline.voice_changer import live

    try:
        devices = live._devices(None)
    except live.DeviceError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(devices, indent=2, default=str))
    else:
        print(live.format_devices(devices))
    return 0
