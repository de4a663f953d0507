"""Images are checked and converted; faces, eyes and mouths are found or refused clearly."""

import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from apipeline.errors import FaceNotFoundError, ImageError
from apipeline.video.face import load_landmarks, locate_face
from apipeline.video.image import read_image, to_rgb


def _png_header_only(path, width, height):
    """A PNG whose header declares width x height but holds one tiny IDAT: decoding would allocate."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_portrait_layout_is_found_by_the_cascades(portrait_path):
    img = read_image(portrait_path)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    layout = locate_face(img)
    assert layout.source == {"face": "haar", "eyes": "haar", "mouth": "haar"}
    fx, fy, fw, fh = layout.face
    mx, my, mw, _ = layout.mouth
    assert fx <= mx and mx + mw <= fx + fw and fy + fh // 2 < my < fy + fh  # mouth in the lower face
    assert len(layout.eyes) == 2 and all(fy <= e[1] < fy + fh // 2 for e in layout.eyes)
    assert layout.eyes[0][0] < layout.eyes[1][0]


def test_layout_scales_with_the_image(portrait_path):
    img = read_image(portrait_path)
    small, big = locate_face(img), locate_face(cv2.resize(img, (512, 512)))
    scaled = small.scaled(2.0, 2.0)
    assert abs(scaled.face[0] - big.face[0]) < 0.1 * big.face[2]
    assert abs(scaled.mouth[1] - big.mouth[1]) < 0.15 * big.face[3]


def test_no_face_is_a_clear_error_or_the_documented_fallback():
    rng = np.random.default_rng(0)
    noise = (rng.random((128, 160, 3)) * 255).astype(np.uint8)
    with pytest.raises(FaceNotFoundError, match="no frontal face found in the 160x128 image"):
        locate_face(noise)
    layout = locate_face(noise, fallback="center")
    assert layout.source["face"] == "center" and layout.face == (32, 25, 96, 77)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (47, 300, 3)])
def test_tiny_images_are_refused(shape):
    with pytest.raises(ImageError, match="too small"):
        to_rgb(np.zeros(shape, np.uint8))


def test_huge_image_is_refused_from_its_header_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    _png_header_only(path, 10_000, 10_000)
    with pytest.raises(ImageError, match="10000x10000: too large"):
        read_image(path)


def test_gray_rgba_16bit_and_float_images_become_rgb(portrait_path):
    rgb = read_image(portrait_path)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert to_rgb(gray).shape == (256, 256, 3)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert np.array_equal(to_rgb(rgba), rgb)
    transparent = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert (to_rgb(transparent) == 255).all()  # composited over white
    assert np.array_equal(to_rgb(rgb.astype(np.uint16) * 257), rgb)
    assert np.abs(to_rgb(rgb / 255.0).astype(int) - rgb).max() <= 1
    with pytest.raises(ImageError, match="NaN"):
        to_rgb(np.full((64, 64, 3), np.nan, np.float32))
    assert locate_face(to_rgb(gray)).source["face"] == "haar"


def test_files_that_are_not_images_are_refused(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="not an image"):
        read_image(bad)
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_landmark_file_replaces_detection_and_is_checked(tmp_path):
    good = tmp_path / "l.json"
    good.write_text(json.dumps({"face": [10, 10, 100, 100], "mouth": [40, 80, 40, 12]}))
    layout = load_landmarks(good, 128, 128)
    assert layout.mouth == (40, 80, 40, 12) and len(layout.eyes) == 2 and layout.source["face"] == "file"
    outside = tmp_path / "o.json"
    outside.write_text(json.dumps({"face": [100, 100, 100, 100]}))
    with pytest.raises(ImageError, match="lies outside the 128x128 image"):
        load_landmarks(outside, 128, 128)
    wrong = tmp_path / "w.json"
    wrong.write_text(json.dumps({"face": [1, 2, 3]}))
    with pytest.raises(ImageError, match=r"face must be \[x, y, width, height\]"):
        load_landmarks(wrong, 128, 128)
    broken = tmp_path / "b.json"
    broken.write_text("{")
    with pytest.raises(ImageError, match="cannot be read as JSON"):
        load_landmarks(broken, 128, 128)
