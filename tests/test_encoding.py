"""Encodings: spec parsing, bit layout, and the image steps (deskew checked against scipy's
affine_transform as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from bitflip.data import images
from bitflip.data.encoding import parse_encoding
from bitflip.errors import UsageError


def test_plain_specs() -> None:
    assert parse_encoding("threshold:32", 255).thresholds == (32,)
    assert parse_encoding("thermo:3", 15).thresholds == (4, 8, 12)
    e = parse_encoding("thermo:3,7,11", 16)
    x = np.array([[0, 3, 8, 16]], dtype=np.uint8)
    assert e.n_bits(4) == 12 and not e.steps
    # level-major: all features at level 0, then level 1, ...
    assert e.bits(x).astype(int).tolist() == [[0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1]]


@pytest.mark.parametrize(
    "spec, n_bits",
    [
        ("deskew+threshold:32", 784),
        ("deskew+crop:20+threshold:32", 400),
        ("crop:20+pool:2+thermo:2", 200),
        ("pool:4+threshold:1", 49),
    ],
)
def test_image_steps_sizes(spec: str, n_bits: int) -> None:
    e = parse_encoding(spec, 255)
    x = np.random.default_rng(0).integers(0, 256, (5, 784)).astype(np.uint8)
    assert e.n_bits(784) == n_bits
    assert e.bits(x).shape == (5, n_bits)


@pytest.mark.parametrize(
    "spec",
    [
        "deskew:2+threshold:32",
        "crop:0+threshold:32",
        "crop:x+threshold:32",
        "blur+threshold:32",
        "threshold:32+deskew",
        "deskew",
        "deskew+",
        "+threshold:32",
        "pool:-2+threshold:3",
        "mi:30",
        "thermo:4+mi:0",
        "thermo:4+mi:101",
        "thermo:4+mi:x",
        "thermo:4+mi:30+mi:30",
        "mi:30+thermo:4",
    ],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(UsageError, match="bad encoding"):
        parse_encoding(spec, 255)


@pytest.mark.parametrize(
    "spec, n, match",
    [
        ("deskew+threshold:1", 10, "not a square"),
        ("crop:29+threshold:1", 784, "crop:29 must be within 1..28"),
        ("crop:20+pool:3+threshold:1", 784, "pool:3 must divide the image side 20"),
    ],
)
def test_steps_that_do_not_fit_the_data(spec: str, n: int, match: str) -> None:
    e = parse_encoding(spec, 255)
    with pytest.raises(UsageError, match=match):
        e.n_bits(n)
    with pytest.raises(UsageError, match=match):
        e.bits(np.zeros((2, n), dtype=np.uint8))


def test_crop_and_pool_exact() -> None:
    x = np.arange(16).reshape(1, 16)  # a 4x4 image
    assert images.crop(x, 4, 2).tolist() == [[5, 6, 9, 10]]
    assert images.pool(x, 4, 2).tolist() == [[3, 5, 11, 13]]  # rounded means of 2x2 blocks


def _slanted_images(n: int, side: int = 28) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = np.zeros((n, side, side), dtype=np.uint8)
    for k in range(n):
        slope, x0, top = rng.uniform(-0.6, 0.6), rng.integers(8, 20), rng.integers(2, 8)
        for y in range(top, side - top):
            xc = round(float(x0 + slope * (y - side / 2)))
            out[k, y, max(0, xc - 1) : xc + 2] = rng.integers(100, 256)
    return out.reshape(n, -1)


def test_deskew_makes_strokes_upright_and_centred() -> None:
    x = _slanted_images(20)
    d = images.deskew(x, 28).reshape(-1, 28, 28).astype(float)
    yy, xx = np.mgrid[:28, :28]
    for img in d:
        m = img.sum()
        cy, cx = (img * yy).sum() / m, (img * xx).sum() / m
        cov = (img * (yy - cy) * (xx - cx)).sum() / m
        var = (img * (yy - cy) ** 2).sum() / m
        assert abs(cov / var) < 0.05  # was up to 0.6 before
        assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0


def test_deskew_matches_scipy_affine_transform() -> None:
    from scipy.ndimage import affine_transform

    x = _slanted_images(30)
    ours = images.deskew(x, 28)
    for img, mine in zip(x.reshape(-1, 28, 28).astype(float), ours):
        yy, xx = np.mgrid[:28, :28]
        m = img.sum()
        c = np.array([(img * yy).sum() / m, (img * xx).sum() / m])
        alpha = ((img * (yy - c[0]) * (xx - c[1])).sum() / m) / ((img * (yy - c[0]) ** 2).sum() / m)
        affine = np.array([[1.0, 0.0], [alpha, 1.0]])
        offset = c - affine @ np.array([14.0, 14.0])
        want = affine_transform(img, affine, offset=offset, order=1, mode="grid-constant", cval=0.0)
        assert np.abs(mine.reshape(28, 28) - np.floor(want + 0.5)).max() <= 1


def test_deskew_is_per_image_and_handles_blank_images() -> None:
    x = _slanted_images(9)
    x[4] = 0
    whole = images.deskew(x, 28)
    assert (whole[4] == 0).all()
    parts = np.concatenate([images.deskew(x[i : i + 2], 28) for i in range(0, 9, 2)])
    assert (whole == parts).all()  # chunking (encoding.CHUNK) cannot change a bit


def test_encoding_chunks_like_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from bitflip.data import encoding

    x = _slanted_images(7)
    e = parse_encoding("deskew+crop:20+threshold:32", 255)
    whole = e.bits(x)
    monkeypatch.setattr(encoding, "CHUNK", 3)
    assert (e.bits(x) == whole).all()


def test_mi_selection_keeps_the_informative_bits_chosen_on_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    informative = (y[:, None] * 100 + rng.integers(0, 40, (n, 2))).astype(np.uint8)  # the class, in 2 columns
    x = np.concatenate([rng.integers(0, 256, (n, 6)), informative], axis=1).astype(np.uint8)  # 6 noise columns first
    enc = parse_encoding("thermo:4+mi:25", 255, 8)
    assert enc.n_bits(8) == 8 and enc.full_bits(8) == 32 and enc.select == 25
    with pytest.raises(RuntimeError, match="fit"):
        enc.pack(x)
    fitted = enc.fit(x, y, 3)
    assert len(fitted.keep) == 8 and list(fitted.keep) == sorted(fitted.keep)
    # level-major bits: bit l*8 + f; the kept ones are the informative columns' (f = 6, 7)
    assert {k % 8 for k in fitted.keep} == {6, 7}
    assert np.array_equal(fitted.bits(x), enc.all_bits(x)[:, list(fitted.keep)])
    assert fitted.pack(x).shape == (n, 1)
    assert enc.fit(x, y, 3) == fitted  # a function of the rows alone
    plain = parse_encoding("thermo:4", 255, 8)
    assert plain.fit(x, y, 3) is plain and plain.n_bits(8) == 32


def test_mi_selection_keeps_no_bit_a_noise_column_could_have_given() -> None:
    """mi:PCT is a quota, not a promise: bits whose information is at chance level stay out."""
    rng = np.random.default_rng(3)
    n = 1200
    y = np.arange(n) % 4
    centre = rng.uniform(60, 200, 4)
    x = np.c_[rng.integers(0, 256, (n, 7)), np.clip(centre[y] + rng.normal(0, 20, n), 0, 255)].astype(np.uint8)
    fitted = parse_encoding("thermo:16+mi:50", 255, 8).fit(x, y, 4)  # a quota of 64 bits, 16 informative at most
    assert 1 <= len(fitted.keep) <= 16 and all(k % 8 == 7 for k in fitted.keep)
    noise = parse_encoding("thermo:4+mi:50", 255, 7).fit(np.ascontiguousarray(x[:, :7]), y, 4)
    assert len(noise.keep) <= 2  # pure noise: the floor leaves the one bit it must keep, give or take a fluke
