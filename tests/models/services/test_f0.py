"""F0 estimators as services: the real FCPE and CREPE-tiny weights, with their self-tests."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import ModelError
from apipeline.models import MachineResources, ModelRegistry, ServiceState
from apipeline.models.services import F0Service

MACHINE = MachineResources(cpu_count=2, available_memory=8 * 2**30, gpus=())


@pytest.mark.parametrize("estimator", ["fcpe", "crepe"])
async def test_f0_service_self_test_and_estimate(estimator):
    pytest.importorskip("torch")
    async with ModelRegistry(machine=MACHINE) as reg:
        (name,) = reg.register(F0Service(estimator))
        await reg.ready(name)
        assert reg.state(name) is ServiceState.READY
        sr = 16000
        t = np.arange(sr // 2) / sr
        audio = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        out = await reg.run(name, "estimate", {"audio": audio, "sample_rate": sr})
        assert out["hop_seconds"] == 0.01 and out["f0"].shape == out["voiced"].shape
        assert np.median(out["f0"][out["voiced"]]) == pytest.approx(330, rel=0.03)


async def test_unknown_estimator_fails_prepare():
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(F0Service("yin-magic"))
        with pytest.raises(ModelError, match="unknown F0 estimator 'yin-magic'"):
            await reg.ready("f0_yin_magic")
