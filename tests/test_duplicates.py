"""Near duplicates across the split: the signature, and the band search that avoids comparing every pair."""
import numpy as np

from datasets.duplicates import BANDS, FRAMES, MAX_BUCKET, frame_hash, near_duplicates, positions


def flipped(signature, bits, rng):
    out = signature.copy()
    for k in rng.choice(FRAMES * 64, size=bits, replace=False):
        out[k // 64] ^= np.uint64(1) << np.uint64(k % 64)
    return out


def test_pairs_within_the_bits_are_found_whatever_the_bands_and_others_are_not():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 2 ** 63, size=(5000, FRAMES), dtype=np.uint64)
    val = rng.integers(0, 2 ** 63, size=(300, FRAMES), dtype=np.uint64)
    for j, bits in enumerate(range(BANDS)):  # up to BANDS - 1 bits: a band is always left whole
        val[j] = flipped(train[10 * j], bits, rng)
    val[20] = flipped(train[999], 40, rng)  # too far
    found = near_duplicates(train, val, max_bits=24)
    assert [(i, j) for i, j, _ in found] == [(10 * j, j) for j in range(BANDS)]
    assert [d for _, _, d in found] == list(range(BANDS))  # closest first
    assert near_duplicates(train, val, max_bits=3)[-1][2] == 3


def test_a_band_value_shared_by_too_many_videos_pairs_nobody():
    flat = np.zeros((MAX_BUCKET + 1, FRAMES), np.uint64)  # black videos: every band the same
    assert near_duplicates(flat, flat[:1], max_bits=0) == []
    assert near_duplicates(flat[:2], flat[:1], max_bits=0) == [(0, 0, 0), (1, 0, 0)]


def test_the_hash_survives_rescaling_and_the_positions_are_relative():
    from PIL import Image
    y, x = np.mgrid[0:48, 0:64]
    frame = np.stack([np.sin(x / 7.0) * 100 + 128, np.cos(y / 5.0) * 100 + 128, x * 2.0], -1).astype(np.uint8)
    bigger = np.asarray(Image.fromarray(frame).resize((160, 120)))
    assert bin(frame_hash(frame) ^ frame_hash(bigger)).count('1') <= 4
    assert bin(frame_hash(frame) ^ frame_hash(np.roll(frame, 20, axis=1))).count('1') > 16  # another picture
    assert positions(range(0, 100)) == [12, 37, 62, 87] and positions(range(1, 251)) == [32, 94, 157, 219]
