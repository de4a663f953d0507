"""``apipeline talking-head`` end to end: the MP4 decodes, stays in sync and moves with the speech."""

import json

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from apipeline.cli.main import main
from apipeline.video.face import locate_face
from apipeline.video.image import read_image


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, portrait_path, speech_with_pause):
    path, sr, t0, t1 = speech_with_pause
    out = tmp_path_factory.mktemp("th") / "out.mp4"
    code = main(
        ["talking-head", "--image", str(portrait_path), "--input", str(path), "--output", str(out), "--json"]
    )
    assert code == 0
    return out, path, sr, t0, t1


def _decode(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        v_dur = float(v.duration * v.time_base)
        a_dur = float(a.duration * a.time_base)
        starts = (float(v.start_time * v.time_base), float(a.start_time * a.time_base))
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    return v_dur, a_dur, starts, frames


def test_the_file_decodes_with_matching_durations_and_offset(rendered):
    out = rendered[0]
    v_dur, a_dur, (v0, a0), frames = _decode(out)
    assert abs(v_dur - a_dur) <= 1 / 25 + 1e-6  # within one frame
    assert abs(v0 - a0) <= 0.040  # A/V offset from the streams' timestamps
    times = np.array([t for t, _ in frames])
    assert np.allclose(np.diff(times), 1 / 25, atol=1e-3)  # one picture per period, none dropped


def test_mouth_motion_follows_the_speech_envelope(rendered, portrait_path):
    out, audio_path, sr, t0, t1 = rendered
    _, _, _, frames = _decode(out)
    x, y, w, h = locate_face(read_image(portrait_path)).mouth
    pics = np.array([f[y - h // 2 : y + 2 * h, x : x + w].astype(np.float32) for _, f in frames])
    motion = np.abs(np.diff(pics, axis=0)).mean(axis=(1, 2, 3))
    audio, _ = sf.read(audio_path, dtype="float32")
    spf = sr / 25
    env = np.array(
        [np.sqrt(np.mean(audio[round(i * spf) : round((i + 1) * spf)] ** 2)) for i in range(1, len(frames))]
    )
    r = np.corrcoef(motion, env)[0, 1]
    assert r >= 0.3, r
    pause = motion[int((t0 + 0.3) * 25) : int(t1 * 25) - 1]
    speech = np.r_[motion[: int(t0 * 25) - 1], motion[int(t1 * 25) + 1 :]]
    assert pause.mean() <= 0.5 * speech.mean(), (pause.mean(), speech.mean())


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--video-bitrate", "10"], "video_bitrate must be within"),
        (["--keyframe-interval", "0"], "keyframe_interval must be within"),
        (["--fps", "120"], "fps must be within"),
    ],
)
def test_bad_encoder_options_fail_before_any_work(tmp_path, portrait_path, capsys, extra, needle):
    out = tmp_path / "o.mp4"
    code = main(
        [
            "talking-head",
            "--image",
            str(portrait_path),
            "--input",
            "/nonexistent.wav",
            "--output",
            str(out),
            *extra,
        ]
    )
    assert code == 2 and needle in capsys.readouterr().err and not out.exists()


def test_container_that_cannot_hold_the_codecs_fails_before_reading_audio(tmp_path, portrait_path, capsys):
    out = tmp_path / "o.webm"
    code = main(
        ["talking-head", "--image", str(portrait_path), "--input", "/nonexistent.wav", "--output", str(out)]
    )
    assert code == 2 and "cannot hold h264" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_output_that_is_an_input_is_refused_and_untouched(tmp_path, portrait_path, speech_with_pause, capsys):
    path = speech_with_pause[0]
    before = path.read_bytes()
    code = main(["talking-head", "--image", str(portrait_path), "--input", str(path), "--output", str(path)])
    assert code == 2 and "is the input" in capsys.readouterr().err and path.read_bytes() == before


@pytest.mark.parametrize(
    ("image", "needle"),
    [
        (np.zeros((1, 1, 3), np.uint8), "too small"),
        ((np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8), "no frontal face"),
    ],
)
def test_unusable_images_are_refused_clearly(tmp_path, speech_with_pause, capsys, image, needle):
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), image)
    out = tmp_path / "o.mp4"
    code = main(
        ["talking-head", "--image", str(img), "--input", str(speech_with_pause[0]), "--output", str(out)]
    )
    assert code == 2 and needle in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("rate", [8000, 48000])
def test_gray_rgba_images_and_any_audio_rate_render(tmp_path, portrait_path, rate, capsys):
    rgb = read_image(portrait_path)
    gray, rgba = tmp_path / "g.png", tmp_path / "a.png"
    cv2.imwrite(str(gray), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(rgba), np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)]))
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.5)).astype(np.float32)
    wav = tmp_path / "t.wav"
    sf.write(wav, tone, rate)
    for img in (gray, rgba):
        out = tmp_path / f"{img.stem}.mp4"
        assert (
            main(["talking-head", "--image", str(img), "--input", str(wav), "--output", str(out), "--json"])
            == 0
        )
        report = json.loads(capsys.readouterr().out)
        assert report["video_frames"] == 25 and report["outcome"] == "written"
        _, _, _, frames = _decode(out)
        assert len(frames) == 25
