"""Opening models: corrupt files, wrong signatures and non-TorchScript checkpoints fail with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from apipeline.errors import ModelSignatureError
from apipeline.models.runners import (
    ContentEncoder,
    NsfHifiGan,
    RvcModel,
    SessionConfig,
    SoVitsSvc,
    open_model,
)


def _onnx_model(path, inputs: dict[str, tuple[int, list]], output: str = "audio") -> str:
    """A one-node ONNX graph with the given inputs (name -> (elem type, shape)); output = first input."""
    from onnx import TensorProto, helper, save

    ins = [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()]
    first = next(iter(inputs))
    out = helper.make_tensor_value_info(output, inputs[first][0], inputs[first][1])
    graph = helper.make_graph([helper.make_node("Identity", [first], [output])], "g", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    assert TensorProto.FLOAT == 1
    return str(path)


F, I64 = 1, 7  # onnx.TensorProto.FLOAT, INT64


def test_sovits_without_mel2ph_names_the_missing_input(tmp_path):
    path = _onnx_model(
        tmp_path / "bad.onnx",
        {
            "c": (F, [1, "T", 256]),
            "f0": (F, [1, "T"]),
            "uv": (F, [1, "T"]),
            "noise": (F, [1, 192, "T"]),
            "sid": (I64, [1]),
        },
    )
    with pytest.raises(
        ModelSignatureError, match=r"not a so-vits-svc 4.x model: missing input\(s\) 'mel2ph'"
    ):
        SoVitsSvc(path)


def test_wrong_types_and_extra_inputs_are_named(tmp_path):
    path = _onnx_model(
        tmp_path / "bad.onnx", {"mel": (I64, [1, "n", 128]), "f0": (F, [1, "n"]), "spk": (I64, [1])}
    )
    with pytest.raises(ModelSignatureError) as info:
        NsfHifiGan(path)
    msg = str(info.value)
    assert "unexpected input(s) 'spk'" in msg and "input 'mel' is int64, expected float32" in msg
    path = _onnx_model(
        tmp_path / "rank.onnx",
        {
            "phone": (F, [1, "T"]),
            "phone_lengths": (I64, [1]),
            "pitch": (I64, [1, "T"]),
            "pitchf": (F, [1, "T"]),
            "ds": (I64, [1]),
            "rnd": (F, [1, 192, "T"]),
        },
    )
    with pytest.raises(ModelSignatureError, match="input 'phone' has rank 2, expected 3"):
        RvcModel(path)


def test_content_encoder_needs_one_audio_input(tmp_path):
    path = _onnx_model(tmp_path / "two.onnx", {"a": (F, [1, 1, "N"]), "b": (F, [1, 1, "N"])}, "units")
    with pytest.raises(ModelSignatureError, match=r"expected exactly one audio input .* it has 'a', 'b'"):
        ContentEncoder(path)


def test_corrupt_missing_and_unknown_files(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf model" * 10)
    with pytest.raises(ModelSignatureError, match=r"corrupt\.onnx: not a loadable ONNX model"):
        open_model(bad)
    with pytest.raises(ModelSignatureError, match="no such model file"):
        open_model(tmp_path / "absent.onnx")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ModelSignatureError, match=r"unknown model kind '.bin'"):
        open_model(tmp_path / "m.bin")


def test_state_dict_checkpoint_is_refused_with_advice(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "model.pth")
    with pytest.raises(ModelSignatureError, match=r"not TorchScript.*torch\.jit\.script/trace"):
        open_model(tmp_path / "model.pth")
    (tmp_path / "plain.pt").write_bytes(b"not a zip")
    with pytest.raises(ModelSignatureError, match="not a TorchScript archive"):
        open_model(tmp_path / "plain.pt")


def test_session_config_validation_and_cpu_provider(tiny_models):
    with pytest.raises(ValueError, match="device must be"):
        SessionConfig(device="tpu")
    with pytest.raises(ValueError, match="intra_op_threads must be >= 1"):
        SessionConfig(intra_op_threads=0)
    enc = ContentEncoder(tiny_models["content_encoder"], SessionConfig(intra_op_threads=1, device="cpu"))
    assert enc.providers == ("CPUExecutionProvider",)
    assert enc.session.inputs["source"].dtype == "float32"
    assert enc.encode(np.zeros(16000, np.float32)).shape == (49, 256)
