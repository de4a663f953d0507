"""AudioFormat lives beside the frames; ``apipeline.audio.format`` keeps the old import path."""

import subprocess
import sys

import pytest

from apipeline.errors import AudioFormatError


def test_one_class_under_both_import_paths():
    from apipeline.audio.format import ANY_AUDIO, SAMPLE_TYPES, AudioFormat
    from apipeline.frames import format as frames_format

    assert AudioFormat is frames_format.AudioFormat
    assert ANY_AUDIO is frames_format.ANY_AUDIO and SAMPLE_TYPES is frames_format.SAMPLE_TYPES


@pytest.mark.parametrize("kwargs", [{"dtype": "int8"}, {"sample_rate": 0}, {"channels": -1}])
def test_bad_fields_are_audio_format_errors_and_value_errors(kwargs):
    from apipeline.frames.format import AudioFormat

    with pytest.raises(AudioFormatError) as info:
        AudioFormat(**kwargs)
    assert isinstance(info.value, ValueError)


def test_the_pipeline_core_loads_no_audio_module():
    code = (
        "import sys, apipeline.pipeline, apipeline.processors.frame_processor\n"
        "print(sorted(m for m in sys.modules if m.startswith('apipeline.audio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
