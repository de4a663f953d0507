"""BlockGeometry lives in the audio layer (model services use it without the processors)."""

import math

import pytest

from apipeline.audio.geometry import BlockGeometry
from apipeline.audio.voice_changer import StreamingVoiceChanger
from apipeline.errors import ParameterError


def test_the_processors_re_export_the_same_class():
    from apipeline.processors.audio import features

    assert features.BlockGeometry is BlockGeometry


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_default_geometry_matches_the_streaming_core(rate):
    g = BlockGeometry.from_ms(rate)
    core = StreamingVoiceChanger(rate)
    assert g.hop == core.hop and g.block == core.block_size
    assert g.window == g.context + g.block and g.kept_start >= 0
    assert math.isclose(g.latency_seconds, g.latency_samples / rate)


@pytest.mark.parametrize(
    "kwargs", [{"block_ms": 0}, {"frame_ms": -1}, {"crossfade_ms": math.nan}, {"context_ms": -5}]
)
def test_bad_lengths_are_parameter_errors(kwargs):
    with pytest.raises(ParameterError, match="BlockGeometry"):
        BlockGeometry.from_ms(16000, **kwargs)
