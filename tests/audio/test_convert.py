import numpy as np
import pytest

from apipeline.audio.convert import as_2d, check_finite, mix_channels, to_float32, to_int16
from apipeline.errors import AudioFormatError


def test_as_2d_shapes():
    assert as_2d(np.zeros(5)).shape == (5, 1)
    assert as_2d(np.zeros((5, 2))).shape == (5, 2)
    with pytest.raises(AudioFormatError, match=r"shape \(2, 3, 4\)"):
        as_2d(np.zeros((2, 3, 4)))


def test_to_float32_scales_int16_and_keeps_float32():
    x = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    y = to_float32(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [-1.0, 0.0, 0.5, 32767 / 32768])
    f = np.ones(3, dtype=np.float32)
    assert to_float32(f) is f
    assert to_float32(np.ones(3)).dtype == np.float32
    np.testing.assert_allclose(to_float32(np.array([-(2**31), 2**30], dtype=np.int32)), [-1.0, 0.5])


def test_to_float32_refuses_ambiguous_dtypes():
    with pytest.raises(AudioFormatError, match=r"uint8"):
        to_float32(np.zeros(3, dtype=np.uint8))


def test_to_int16_rounds_and_clips():
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 1.4 / 32768, 1.6 / 32768], dtype=np.float32)
    y = to_int16(x)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, [0, 16384, -16384, 32767, -32768, 32767, -32768, 1, 2])


def test_int16_float_round_trip_is_exact():
    x = np.arange(-32768, 32768, dtype=np.int16)
    np.testing.assert_array_equal(to_int16(to_float32(x)), x)


def test_to_int16_refuses_nan():
    with pytest.raises(AudioFormatError, match=r"to_int16.*sample 2"):
        to_int16(np.array([0.0, 0.1, np.nan], dtype=np.float32))


def test_check_finite_reports_first_bad_sample():
    check_finite(np.zeros((4, 2), dtype=np.float32), "here")
    check_finite(np.zeros(4, dtype=np.int16), "here")
    x = np.zeros((10, 2), dtype=np.float32)
    x[7, 1] = np.inf
    x[9, 0] = np.nan
    with pytest.raises(
        AudioFormatError, match=r"resampler: audio contains 2 non-finite.*inf at frame 7, channel 1"
    ):
        check_finite(x, "resampler")


def test_mix_down_averages():
    x = np.array([[1.0, 0.0], [0.5, 0.5], [-1.0, 1.0]], dtype=np.float32)
    y = mix_channels(x, 1)
    assert y.shape == (3, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], [0.5, 0.5, 0.0])


def test_mix_down_int16_rounds():
    x = np.array([[1, 2], [-3, -2]], dtype=np.int16)
    y = mix_channels(x, 1)
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y[:, 0], [2, -2])


def test_mix_up_duplicates_mono():
    x = np.arange(4, dtype=np.float32)
    y = mix_channels(x, 2)
    assert y.shape == (4, 2)
    np.testing.assert_array_equal(y[:, 0], x)
    np.testing.assert_array_equal(y[:, 1], x)


def test_mix_same_count_is_identity():
    x = np.zeros((3, 2), dtype=np.float32)
    assert mix_channels(x, 2) is x


def test_mix_refuses_other_layouts():
    with pytest.raises(AudioFormatError, match=r"cannot mix 2 channels to 6"):
        mix_channels(np.zeros((3, 2)), 6)
    with pytest.raises(ValueError, match=r"positive"):
        mix_channels(np.zeros(3), 0)
