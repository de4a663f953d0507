"""Choosing a backend from options: the command-line helpers and the limits they hand the registry."""

from __future__ import annotations

import argparse

import pytest

from apipeline.models import LocalBackend, ModelRegistry
from apipeline.models.backends import (
    add_backend_arguments,
    backend_from_options,
    bring_up_timeout,
    registry_options,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--ray-address", default=None)
    add_backend_arguments(p)
    return p


def test_options_reach_the_ray_backend() -> None:
    pytest.importorskip("ray")
    argv = ["--ray-address", "127.0.0.1:26379", "--ray-replicas", "3", "--ray-cpus", "0.5"]
    argv += ["--ray-gpus", "0.25", "--ray-max-concurrency", "7", "--ray-start-timeout", "42"]
    args = parser().parse_args(argv)  # nothing connects until the backend starts
    backend = backend_from_options(args)
    assert backend is not None
    assert (backend.replicas, backend.num_cpus, backend.num_gpus) == (3, 0.5, 0.25)  # type: ignore[attr-defined]
    assert (backend.max_concurrency, backend.start_timeout) == (7, 42.0)  # type: ignore[attr-defined]
    # The pipeline gives the remote stage the backend's bring-up bound, not its generic 10 s.
    assert bring_up_timeout(ModelRegistry(backend=backend)) == 42.0
    # One admission: the pool's. The registry neither limits nor queues in front of it.
    assert registry_options(backend) == {"max_concurrency": 1 << 30, "max_pending": 0}


def test_without_an_address_there_is_no_remote_backend() -> None:
    args = parser().parse_args([])
    assert backend_from_options(args) is None
    assert bring_up_timeout(ModelRegistry(backend=LocalBackend(2))) == 10.0
    assert registry_options(LocalBackend(2)) == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["--ray-address", "nonsense"],
        ["--ray-address", "host:0"],
        ["--ray-cpus", "0"],
        ["--ray-cpus", "nan"],
        ["--ray-gpus", "-1"],
        ["--ray-replicas", "0"],
        ["--ray-max-concurrency", "1.5"],
        ["--ray-start-timeout", "0"],
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "expected" in err or "is not one" in err, err
