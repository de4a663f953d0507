"""Bad options are usage errors: exit 2, one line on stderr, no traceback, nothing processed (item 4)."""

from __future__ import annotations

import pytest

from tests.voice_changer.conftest import cli


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--search-ms", "-5"], "search_ms must be within 0..50"),
        (["--lookahead-ms", "-10"], "lookahead_ms must be within 0..100"),
        (["--context-ms", "-50"], "context_ms must be within 0..500"),
        (["--search-ms", "nan"], "search_ms must be a finite number"),
        (["--block-ms", "inf"], "block_ms must be a finite number"),
        (["--crossfade-ms", "100", "--block-ms", "20"], "crossfade_ms (100) must not exceed block_ms (20)"),
        (["--pitch", "100"], "pitch must be within -36..36"),
        (["--f0", "dioo"], "did you mean 'dio'"),
        (["--block-ms", "5000"], "block_ms must be within 5..500"),
    ],
)
def test_bad_options_are_one_line_usage_errors(clip, tmp_path, capsys, args, needle):
    from apipeline.cli.main import main

    out = tmp_path / "o.wav"
    try:
        code = main(["voice-changer", "--input", str(clip), "--output", str(out), *args])
    except SystemExit as exc:  # argparse's (overridden, one-line) error
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # refused before any work


def test_a_negative_search_in_a_subprocess_is_a_usage_error_not_a_traceback(clip, tmp_path):
    res = cli("--input", str(clip), "--output", str(tmp_path / "o.wav"), "--search-ms", "-5", timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]


def test_options_are_generated_from_the_schema_and_help_lists_bounds():
    import argparse

    from apipeline.cli.voice_changer import _configure
    from apipeline.voice_changer.settings import VoiceChangerSettings

    parser = argparse.ArgumentParser()
    _configure(parser)
    text = parser.format_help()
    for name in VoiceChangerSettings.schema():
        option = "--sample-rate" if name == "sample_rate" else "--" + name.replace("_", "-")
        assert option in text, option
    assert "5..500 ms" in text and "live-changeable" in text
