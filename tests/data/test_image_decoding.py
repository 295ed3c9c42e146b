"""The one image decoder: header sizes, DCT-scaled JPEGs, the pixel limit."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from grok_tf.data.images import FORMATS
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import ImageDecoder
from grok_tf.data.images import describe_skipped
from grok_tf.data.images import image_header_size
from grok_tf.data.images import resize_for_eval
from tests.helpers import png_declaring


def encode(pixels, fmt, mode=None, **options):
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


PIXELS = np.random.default_rng(0).integers(0, 255, (37, 61, 3), np.uint8)
ENCODINGS = {
    "jpeg": lambda: encode(PIXELS, "JPEG"),
    "progressive jpeg": lambda: encode(PIXELS, "JPEG", progressive=True),
    "png": lambda: encode(PIXELS, "PNG"),
    "grey png": lambda: encode(PIXELS, "PNG", mode="L"),
    "png with alpha": lambda: encode(PIXELS, "PNG", mode="RGBA"),
    "gif": lambda: encode(PIXELS, "GIF"),
    "bmp": lambda: encode(PIXELS, "BMP"),
    "webp (VP8)": lambda: encode(PIXELS, "WEBP"),
    "webp (VP8L)": lambda: encode(PIXELS, "WEBP", lossless=True),
    "webp (VP8X)": lambda: encode(PIXELS, "WEBP", exif=b"Exif\0\0MM\0*"),
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_header_size_is_the_decoded_size(name):
    data = ENCODINGS[name]()
    height, width = image_header_size(data)
    assert (int(height), int(width)) == (37, 61)
    assert ImageDecoder().decode(data).shape == (37, 61, 3)


def test_webp_chunk_kinds_are_the_ones_parsed():
    assert [
        ENCODINGS[f"webp ({k})"]()[12:16] for k in ("VP8", "VP8L", "VP8X")
    ] == [
        b"VP8 ",
        b"VP8L",
        b"VP8X",
    ]


def test_bmp_stored_top_down_has_a_positive_height():
    data = bytearray(ENCODINGS["bmp"]())
    data[22:26] = struct.pack("<i", -37)  # negative height: top-down rows
    assert [int(v) for v in image_header_size(bytes(data))] == [37, 61]


def test_jpeg_size_is_found_after_app_segments_and_fill_bytes():
    data = ENCODINGS["jpeg"]()
    app = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + bytes(5000)  # EXIF-like
    padded = data[:2] + app + b"\xff\xff\xff" + data[2:]
    assert [int(v) for v in image_header_size(padded)] == [37, 61]
    assert ImageDecoder().decode(padded).shape == (37, 61, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF",
        b"hello world" * 10,
        b"\xff\xd8\xff",  # a JPEG that stops after its first marker
        b"\xff\xd8" + b"\xff" * 1_000_000,  # fill bytes for ever
    ],
    ids=["empty", "short", "text", "cut jpeg", "fill"],
)
def test_unknown_bytes_have_no_size(data):
    assert [int(v) for v in image_header_size(data)] == [-1, -1]


def test_a_jpeg_scan_before_any_frame_is_refused():
    data = b"\xff\xd8\xff\xda\x00\x08" + bytes(100)
    with pytest.raises(tf.errors.InvalidArgumentError):
        image_header_size(data)
    assert not ImageDecoder().decode_or_flag(data)[1]


def test_a_cut_jpeg_header_never_reaches_libjpeg(capfd):
    cut = ENCODINGS["jpeg"]()[:300]  # inside the Huffman tables
    assert [int(v) for v in image_header_size(cut)] == [-1, -1]
    image, ok = ImageDecoder().decode_or_flag(cut)
    assert not ok
    # libjpeg prints "Improper call to JPEG library" on its own stderr.
    assert "JPEG" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "size, expected",
    [
        (None, (1600, 1200)),  # full size
        (301, (1600, 1200)),  # 1/2 would leave 600 < 2 * 301
        (300, (800, 600)),  # 1/2 scale: 600 >= 2 * 300
        (100, (400, 300)),  # 1/4
        (32, (200, 150)),  # 1/8 is the smallest scale libjpeg offers
    ],
)
def test_large_jpegs_decode_at_the_smallest_scale_twice_the_input(
    size, expected
):
    data = tf.io.encode_jpeg(tf.zeros([1600, 1200, 3], tf.uint8))
    assert ImageDecoder(size).decode(data).shape == (*expected, 3)


def test_scaled_decode_matches_the_full_decode_downsampled():
    rng = np.random.default_rng(1)
    smooth = rng.integers(0, 255, (16, 12, 3)).astype(np.uint8)
    pixels = np.kron(smooth, np.ones((64, 64, 1), np.uint8))  # 1024 x 768
    data = encode(pixels, "JPEG", quality=95)
    scaled = ImageDecoder(64).decode(data).numpy().astype(float)
    assert scaled.shape == (256, 192, 3)  # 1/4: 192 >= 2 * 64
    full = ImageDecoder().decode(data).numpy().astype(float)
    pooled = full.reshape(256, 4, 192, 4, 3).mean(axis=(1, 3))
    assert np.abs(scaled - pooled).mean() < 3.0


@pytest.mark.parametrize(
    "shorter, expected",
    [
        (292, 292),  # 1/2 would leave 146 < 128 / 0.875 = 146.3
        (293, 147),  # 1/2: the crop of 0.875 * 147 still covers 128 px
        (348, 174),  # grocery's photos: 1/2
        (1200, 150),  # 1/8
        (1000, 250),  # 1/4: 1/8 would leave 125
    ],
)
def test_eval_decodes_jpegs_twice_the_input_at_a_smaller_scale(
    shorter, expected
):
    data = tf.io.encode_jpeg(tf.zeros([shorter, shorter + 50, 3], tf.uint8))
    decoded = EvalPreprocessor(128).decoder.decode(data)
    assert decoded.shape[0] == expected
    assert EvalPreprocessor(128)(data).shape == (128, 128, 3)


@pytest.mark.parametrize(
    "shape", [(40, 40), (348, 348), (50, 70), (3, 500), (1000, 700), (1, 1)]
)
def test_resize_for_eval_is_the_crop_of_the_antialiased_resize(shape):
    pixels = np.random.default_rng(2).uniform(0, 255, (*shape, 3))
    pixels = pixels.astype("float32")
    shorter = min(shape)
    new = [max(round(side * (32 / 0.875) / shorter), 32) for side in shape]
    top, left = (new[0] - 32) // 2, (new[1] - 32) // 2
    resized = tf.image.resize(pixels, new, antialias=True).numpy()
    expected = np.clip(resized[top : top + 32, left : left + 32], 0, 255)
    np.testing.assert_allclose(resize_for_eval(pixels, 32), expected, atol=0.01)
    batch = np.stack([pixels, 255 - pixels])
    np.testing.assert_allclose(
        resize_for_eval(batch, 32)[0], expected, atol=0.01
    )


def test_a_batch_is_prepared_in_order_bad_images_flagged():
    prepare = EvalPreprocessor(32)
    rng = np.random.default_rng(3)
    good = [
        encode(rng.integers(0, 255, (h, w, 3), np.uint8), fmt)
        for h, w, fmt in [(300, 200, "JPEG"), (40, 60, "PNG"), (90, 90, "GIF")]
    ]
    batch = [good[0], b"", good[1], good[0][:200], good[2], b"text"]
    images, valid = prepare.batch_or_flag(tf.constant(batch))
    assert valid.numpy().tolist() == [True, False, True, False, True, False]
    for row, data in zip([0, 2, 4], good, strict=True):
        np.testing.assert_array_equal(images[row], prepare(data))
    assert not images.numpy()[[1, 3, 5]].any()
    images, valid = prepare.batch_or_flag(tf.constant([], tf.string))
    assert images.shape == (0, 32, 32, 3) and valid.shape == (0,)
    images, valid = prepare.batch_or_flag(tf.constant([b"", b"x"]))
    assert images.shape == (2, 32, 32, 3) and not valid.numpy().any()


def test_pngs_are_never_scaled():
    data = encode(np.zeros((600, 500, 3), np.uint8), "PNG")
    assert ImageDecoder(32).decode(data).shape == (600, 500, 3)


def test_a_small_png_declaring_50000_squared_pixels_is_refused():
    data = png_declaring(50_000, 50_000)
    assert len(data) < 200
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pix"):
        ImageDecoder(64).decode(data)
    image, ok = ImageDecoder(64).decode_or_flag(data)
    assert not ok and image.shape == (1, 1, 3)


def test_the_limit_counts_pixels_after_jpeg_scaling():
    data = tf.io.encode_jpeg(tf.zeros([1600, 1200, 3], tf.uint8))
    assert ImageDecoder(32, max_pixels=200 * 150).decode(data).shape[0] == 200
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pix"):
        ImageDecoder(32, max_pixels=200 * 150 - 1).decode(data)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pix"):
        ImageDecoder(None, max_pixels=1_000_000).decode(data)


def test_a_progressive_jpeg_counts_its_whole_frame():
    # libjpeg holds every coefficient of a progressive frame while it
    # decodes, whatever the scale: 4000 x 3000 costs 12 M pixels, not 1/8.
    pixels = np.zeros((4000, 3000, 3), np.uint8)
    progressive = encode(pixels, "JPEG", progressive=True)
    baseline = encode(pixels, "JPEG")
    decoder = ImageDecoder(64, max_pixels=10_000_000)
    assert decoder.decode(baseline).shape == (500, 375, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pix"):
        decoder.decode(progressive)
    roomy = ImageDecoder(64, max_pixels=12_000_000)
    assert roomy.decode(progressive).shape == (500, 375, 3)


def test_the_limit_is_inclusive():
    data = encode(np.zeros((10, 20, 3), np.uint8), "PNG")
    assert ImageDecoder(max_pixels=200).decode(data).shape == (10, 20, 3)
    _, ok = ImageDecoder(max_pixels=199).decode_or_flag(data)
    assert not ok


def test_the_decoder_works_inside_a_dataset_map():
    good = encode(PIXELS, "PNG")
    big = tf.io.encode_jpeg(tf.zeros([1600, 1200, 3], tf.uint8)).numpy()
    data = [good, png_declaring(9000, 9000), b"", big, b"\xff\xd8\xff\xe0"]
    decoder = ImageDecoder(100, max_pixels=10_000_000)
    ds = tf.data.Dataset.from_tensor_slices(data).map(decoder.decode_or_flag)
    got = [(tuple(image.shape), bool(ok)) for image, ok in ds]
    assert got == [
        ((37, 61, 3), True),
        ((1, 1, 3), False),  # 81 M pixels
        ((1, 1, 3), False),
        ((400, 300, 3), True),
        ((1, 1, 3), False),  # a JPEG header and nothing else
    ]


def test_a_file_recorded_as_unreadable_is_not_read_again(tmp_path):
    path = tmp_path / "fine.png"
    path.write_bytes(encode(PIXELS, "PNG"))
    log = CorruptImageLog()
    decoder = ImageDecoder()
    _, ok = decoder.load_or_flag(tf.constant(str(path)), b"", log)
    assert ok
    log.record(str(path))  # as if it had failed to decode earlier
    _, ok = decoder.load_or_flag(tf.constant(str(path)), b"", log)
    assert not ok


def test_failure_reasons_name_each_problem(tmp_path):
    files = {
        "missing.jpg": None,
        "empty.jpg": b"",
        "text.jpg": b"hello, not an image",
        "truncated.png": encode(PIXELS, "PNG")[:80],
        "huge.png": png_declaring(50_000, 50_000),
        "huge.jpg": tf.io.encode_jpeg(
            tf.zeros([1600, 1200, 3], tf.uint8)
        ).numpy(),
        "progressive.jpg": encode(
            np.zeros((300, 200, 3), np.uint8), "JPEG", progressive=True
        ),
    }
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    decoder = ImageDecoder(32, max_pixels=20_000)
    log = CorruptImageLog(decoder)
    for name in [*files, "folder.jpg"]:
        log.record(str(tmp_path / name))
    reasons = {
        k.rsplit("/", 1)[-1]: v for k, v in log.summary()["files"].items()
    }
    assert reasons == {
        "missing.jpg": "file not found",
        "empty.jpg": "empty file",
        "text.jpg": f"not a {FORMATS} image",
        "truncated.png": "corrupt or truncated",
        "huge.png": "too large: 50000x50000 decodes to 2,500,000,000 pixels, "
        "above max_image_pixels=20,000",
        "huge.jpg": "too large: 1200x1600 decodes to 30,000 pixels at 1/8 "
        "scale, above max_image_pixels=20,000",
        "progressive.jpg": "too large: 200x300 progressive JPEG holds 60,000 "
        "pixels, above max_image_pixels=20,000",
        "folder.jpg": "a directory, not an image file",
    }
    assert log.summary()["reasons"]["too large"] == 3


def test_the_skip_report_is_one_bounded_line():
    files = {f"img{i:04}.jpg": "file not found" for i in range(5000)}
    files["x.jpg"] = "empty file"
    line = describe_skipped(files)
    assert "\n" not in line and len(line) < 200
    assert line.startswith("5001 files (5000 file not found, 1 empty file)")
    assert line.endswith("(+4998 more)")
