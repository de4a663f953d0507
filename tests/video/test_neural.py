"""The neural path on models of the wav2lip and GFPGAN signatures that the project builds itself."""

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from apipeline.cli.main import main
from apipeline.errors import ModelSignatureError
from apipeline.video.image import read_image
from apipeline.video.mouth import MouthShape
from apipeline.video.wav2lip import MelFrontEnd, NeuralRenderer

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_video_models.py"


@pytest.fixture(scope="session")
def tiny_video_models(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_video_models", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(tmp_path_factory.mktemp("video_models"))


def test_mel_windows_do_not_depend_on_chunking_or_rate():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    whole, chunked = MelFrontEnd(16000), MelFrontEnd(16000)
    whole.feed(x)
    for part in np.array_split(x, 37):
        chunked.feed(part)
    a, b = whole.window(0.8), chunked.window(0.8)
    assert a.shape == (80, 16) and np.allclose(a, b, atol=1e-4)
    assert a.min() >= -4.0 and a.max() <= 4.0 and a.std() > 0.1
    silent = MelFrontEnd(22050)
    silent.feed(np.zeros(22050, np.float32))
    assert np.allclose(silent.window(0.5), -4.0)


def test_neural_renderer_redraws_the_lower_face_from_the_audio(tiny_video_models, portrait_path):
    img = read_image(portrait_path)
    r = NeuralRenderer(img, str(tiny_video_models["wav2lip"]), fps=25)
    audio, sr = sf.read(Path(portrait_path).parent / "speech.wav", dtype="float32")
    r.feed(audio[: sr // 2], sr)
    loud = r.render(MouthShape(10, 0.0, 0.5, 0.0))
    r.reset()
    r.feed(np.zeros(sr // 2, np.float32), sr)
    quiet = r.render(MouthShape(10, 0.0, 0.5, 0.0))
    assert loud.shape == img.shape == quiet.shape
    x0, y0, x1, y1 = r._box
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(loud[outside], img[outside])  # only the face crop is redrawn
    lower = slice(y0 + (y1 - y0) // 2, y1)
    assert np.abs(loud[lower, x0:x1].astype(int) - quiet[lower, x0:x1]).mean() > 0.5  # the audio matters
    upper = slice(y0, y0 + (y1 - y0) // 3)
    assert np.abs(loud[upper, x0:x1].astype(int) - img[upper, x0:x1]).mean() < 1.0  # eyes stay


def test_models_of_the_wrong_signature_are_refused(tiny_video_models, portrait_path):
    img = read_image(portrait_path)
    with pytest.raises(ModelSignatureError, match="not a wav2lip model"):
        NeuralRenderer(img, str(tiny_video_models["gfpgan"]))
    with pytest.raises(ModelSignatureError, match="not a GFPGAN model"):
        NeuralRenderer(img, str(tiny_video_models["wav2lip"]), enhancer=str(tiny_video_models["wav2lip"]))
    with pytest.raises(ModelSignatureError, match="no such model file"):
        NeuralRenderer(img, "/nonexistent/wav2lip.onnx")


def test_cli_runs_the_chained_models(tiny_video_models, portrait_path, speech_with_pause, tmp_path, capsys):
    out = tmp_path / "n.mp4"
    args = [
        "talking-head",
        "--image",
        str(portrait_path),
        "--input",
        str(speech_with_pause[0]),
        "--output",
        str(out),
    ]
    args += ["--model", str(tiny_video_models["wav2lip"]), "--enhancer", str(tiny_video_models["gfpgan"])]
    assert main(args) == 0
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 125  # 5 s at 25 fps
    bad = ["talking-head", "--image", str(portrait_path), "--input", str(speech_with_pause[0])]
    bad += ["--output", str(tmp_path / "x.mp4"), "--model", str(tiny_video_models["gfpgan"])]
    assert main(bad) == 2 and "not a wav2lip model" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
