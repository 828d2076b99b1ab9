"""4:2:0 clips kept as planes (datasets/planar_clip.py): the fast resize and conversion give the plain results."""
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from datasets.planar_clip import PlanarClip, planes_to_rgb, resize_frames, yuv_to_rgb

MATRIX = torch.tensor([[1.164383, 0.0, 1.596027], [1.164383, -0.391762, -0.812968], [1.164383, 2.017232, 0.0]],
                      dtype=torch.float64)


@pytest.mark.parametrize('frames', [16, 9, 7])  # grouped 4, 3 and 1 frames per resize
def test_frames_resized_together_equal_frames_resized_alone(frames):
    g = torch.Generator().manual_seed(frames)
    clip = torch.randint(0, 256, (frames, 3 * 29, 41), dtype=torch.uint8, generator=g)
    view = clip[:, 5:5 + 61, 3:3 + 37]  # a box of the planes, as PlanarClip hands it over
    alone = torch.stack([TF.resize(f[None], [20, 24], antialias=True)[0] for f in view])
    assert torch.equal(resize_frames(view, (20, 24)), alone)
    assert resize_frames(view, (61, 37)) is view  # nothing to resize


def test_conversion_is_bt601_limited_range_rounded_and_clamped_in_any_layout():
    g = torch.Generator().manual_seed(0)
    yuv = torch.randint(0, 256, (6, 5, 7, 3), dtype=torch.uint8, generator=g).permute(3, 0, 1, 2)  # interleaved
    expected = (MATRIX @ (yuv.reshape(3, -1).double() - torch.tensor([[16.0], [128.0], [128.0]], dtype=torch.float64)))
    expected = expected.round().clamp(0, 255).reshape(yuv.shape)
    got = yuv_to_rgb(yuv)
    assert got.dtype == torch.uint8 and got.is_contiguous()
    assert (got.double() - expected).abs().max() <= 1  # float32 against float64: a rounding tie at most
    assert (got.double() != expected).float().mean() < 1e-3
    assert torch.equal(planes_to_rgb(*yuv.unbind(0)), got)
    as_float = yuv.float()
    assert torch.equal(yuv_to_rgb(as_float), got) and torch.equal(as_float, yuv.float())  # input left as it was


@pytest.mark.parametrize('box', [(0, 0, 48, 64), (6, 4, 30, 40), (5, 7, 31, 33), (1, 0, 47, 63), (0, 0, 47, 64),
                                 (3, 4, 30, 40), (2, 4, 30, 39)])
def test_crop_resized_equals_resizing_the_full_4_4_4_frames(box):
    """Chroma samples cut by an odd edge are repeated first (the same result); whole ones resize straight."""
    g = torch.Generator().manual_seed(sum(box))
    h, w = 48, 64
    y = torch.randint(16, 236, (8, h, w), dtype=torch.uint8, generator=g)
    coarse = torch.randint(16, 241, (2 * 8, 1, 4, 5), generator=g).float()  # colour varies smoothly, as in footage
    uv = TF.resize(coarse, [h // 2, w // 2], antialias=True).round().to(torch.uint8).view(2, 8, h // 2, w // 2)
    packed = torch.cat([y, torch.cat([uv[0], uv[1]], dim=-1)], dim=1)[:, None]
    clip = PlanarClip(packed, h, w)
    top, left, bh, bw = box
    full = torch.cat([y[None], uv.repeat_interleave(2, -2).repeat_interleave(2, -1)])  # 4:4:4, 3 x T x H x W
    reference = yuv_to_rgb(torch.stack([resize_frames(p[:, top:top + bh, left:left + bw].contiguous(), (20, 24))
                                        for p in full]))
    got = clip.crop_resized(box, (20, 24))
    if top % 2 == 0 and left % 2 == 0 and bh % 2 == 0 and bw % 2 == 0:
        # whole chroma samples: resizing the half-size planes straight differs only by filter rounding
        assert (got.float() - reference.float()).abs().mean() < 1.0
    else:
        assert torch.equal(got, reference)
    assert torch.equal(clip.decode_for(), yuv_to_rgb(full))
