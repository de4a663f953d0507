"""Neural services on the tiny models, through the registry: lifecycle, self-tests, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import ModelError, ModelSignatureError, SelfTestError
from apipeline.models import MachineResources, ModelRegistry, ServiceState
from apipeline.models.runners import RvcModel, SoVitsSvc
from apipeline.models.services import ContentEncoderService, SvcService, VocoderService, open_svc

MACHINE = MachineResources(cpu_count=2, available_memory=8 * 2**30, gpus=())


async def test_voice_conversion_chain_through_the_registry(tiny_models):
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(ContentEncoderService(tiny_models["content_encoder"]))
        reg.register(SvcService(tiny_models["sovits_mel"]))
        reg.register(VocoderService(tiny_models["nsf_hifigan"]))
        info = reg.info("svc")
        assert info["resources"]["memory"] == 4 * tiny_models["sovits_mel"].stat().st_size
        assert [p["name"] for p in info["methods"][0]["params"]] == [
            "content",
            "f0",
            "speaker",
            "vol",
            "seed",
        ]
        audio = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 150).astype(np.float32)
        content = await reg.run("content_encoder", "encode", {"audio": audio})
        f0 = np.full(86, 150.0, np.float32)
        mel = await reg.run("svc", "convert", {"content": content, "f0": f0, "speaker": 1})
        wav = await reg.run("vocoder", "synthesize", {"mel": mel, "f0": f0})
        assert content.shape == (49, 256) and mel.shape == (86, 128) and wav.shape == (86 * 512,)
        assert all(reg.state(s) is ServiceState.READY for s in ("content_encoder", "svc", "vocoder"))


def test_open_svc_picks_the_signature(tiny_models, tmp_path):
    assert isinstance(open_svc(tiny_models["sovits"]), SoVitsSvc)
    assert isinstance(open_svc(tiny_models["rvc"]), RvcModel)
    with pytest.raises(ModelSignatureError, match=r"(?s)not a so-vits-svc 4.x model.*not a RVC model"):
        open_svc(tiny_models["nsf_hifigan"])


@pytest.mark.parametrize("name", ["sovits", "sovits_mix", "rvc"])
async def test_svc_self_test_passes_on_every_signature(tiny_models, name):
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(SvcService(tiny_models[name]))
        await reg.ready("svc")
        assert reg.state("svc") is ServiceState.READY


async def test_missing_file_fails_prepare(tmp_path):
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(VocoderService(tmp_path / "absent.onnx"))
        with pytest.raises(ModelError, match=r"prepare failed .*no such model file"):
            await reg.ready("vocoder")
        assert reg.state("vocoder") is ServiceState.REGISTERED


async def test_wrong_signature_fails_load_naming_the_input(tiny_models):
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(VocoderService(tiny_models["content_encoder"]))
        with pytest.raises(ModelError, match=r"missing input\(s\) 'mel', 'f0'") as info:
            await reg.ready("vocoder")
        assert isinstance(info.value.__cause__, ModelSignatureError)
        assert reg.state("vocoder") is ServiceState.PREPARED


async def test_vocoder_with_right_signature_but_wrong_output_is_unusable(tmp_path):
    from onnx import TensorProto, helper, save

    ins = [
        helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, "n", 128]),
        helper.make_tensor_value_info("f0", TensorProto.FLOAT, [1, "n"]),
    ]
    out = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, "n"])
    graph = helper.make_graph([helper.make_node("Identity", ["f0"], ["waveform"])], "g", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "broken_vocoder.onnx"))
    async with ModelRegistry(machine=MACHINE) as reg:
        reg.register(VocoderService(tmp_path / "broken_vocoder.onnx"))
        with pytest.raises(SelfTestError, match="gave 43 samples for 43 frames; expected 22016"):
            await reg.ready("vocoder")
        assert reg.state("vocoder") is ServiceState.UNUSABLE
