"""Spatial transforms on whole uint8 clips: one draw per clip, same pixels as a per-frame reference."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

import spatial_transforms as st


def frames_clip(t=4, h=60, w=80, same=False):
    """C x T x H x W uint8 with smooth content (identical frames when ``same``)."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    frames = []
    for i in range(t):
        k = 0 if same else i
        frames.append(torch.stack([(x * 3 + k * 7) % 256, (y * 4) % 256, ((x + y) * 2 + k) % 256]))
    return torch.stack(frames, dim=1).to(torch.uint8)


@pytest.mark.parametrize('transform', [
    st.RandomResizedCrop(32), st.MultiScaleCornerCrop(32), st.CornerCrop(32),
    st.RandomHorizontalFlip(), st.ColorJitter(),
], ids=lambda t: type(t).__name__)
def test_random_parameters_are_drawn_once_per_clip(transform):
    clip = frames_clip(t=6, same=True)
    for seed in range(5):
        out = transform(clip, random.Random(seed))
        assert out.dtype == torch.uint8 and out.shape[:2] == clip.shape[:2]
        assert all(torch.equal(out[:, 0], out[:, i]) for i in range(1, out.shape[1]))


def test_random_resized_crop_matches_per_frame_pil_for_a_fixed_draw():
    clip = frames_clip(t=3, h=120, w=160)
    crop = st.RandomResizedCrop(56)
    top, left, h, w = crop.get_params(120, 160, random.Random(3))
    ours = crop(clip, random.Random(3))
    for i in range(3):
        img = Image.fromarray(clip[:, i].permute(1, 2, 0).numpy())
        ref = np.asarray(img.crop((left, top, left + w, top + h)).resize((56, 56), Image.BILINEAR))
        diff = np.abs(ours[:, i].permute(1, 2, 0).numpy().astype(int) - ref.astype(int))
        assert diff.max() <= 2, diff.max()


def test_random_resized_crop_box_stays_in_range():
    crop = st.RandomResizedCrop(16, scale=(0.25, 1.0), ratio=(0.75, 4 / 3))
    rng = random.Random(0)
    for _ in range(200):
        top, left, h, w = crop.get_params(48, 64, rng)
        assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64
        assert 0.2 <= h * w / (48 * 64) <= 1.0


def test_resize_and_center_crop_follow_torchvision_semantics():
    clip = frames_clip(t=2, h=240, w=320)
    assert st.Resize(112)(clip).shape == (3, 2, 112, 149)
    assert st.Resize(112)(clip.transpose(2, 3)).shape == (3, 2, 149, 112)
    assert st.Resize((20, 30))(clip).shape == (3, 2, 20, 30)
    out = st.CenterCrop(112)(st.Resize(112)(clip))
    assert out.shape == (3, 2, 112, 112)
    ref = Image.fromarray(clip[:, 0].permute(1, 2, 0).numpy()).resize((149, 112), Image.BILINEAR)
    ref = np.asarray(ref)[:, 18:130]
    assert np.abs(out[:, 0].permute(1, 2, 0).numpy().astype(int) - ref).max() <= 2


def test_corner_crop_positions_and_scales():
    clip = frames_clip(t=1, h=10, w=12)
    assert torch.equal(st.CornerCrop(4, 'tl')(clip), clip[..., :4, :4])
    assert torch.equal(st.CornerCrop(4, 'br')(clip), clip[..., 6:, 8:])
    assert torch.equal(st.CornerCrop(4, 'tr')(clip), clip[..., :4, 8:])
    assert torch.equal(st.CornerCrop(4, 'bl')(clip), clip[..., 6:, :4])
    assert torch.equal(st.CornerCrop(4, 'c')(clip), clip[..., 3:7, 4:8])
    assert st.CORNER_SCALES == pytest.approx([1, 0.84089642, 0.70710678, 0.59460356, 0.5])
    assert st.MultiScaleCornerCrop(8)(clip, random.Random(0)).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError):
        st.CornerCrop(4, 'middle')


def test_flip_mirrors_every_frame():
    clip = frames_clip()
    rng = random.Random(0)
    assert torch.equal(st.RandomHorizontalFlip(p=1.0)(clip, rng), clip.flip(-1))
    assert torch.equal(st.RandomHorizontalFlip(p=0.0)(clip, rng), clip)


def test_color_jitter_changes_colours_and_keeps_shape():
    clip = frames_clip()
    out = st.ColorJitter()(clip, random.Random(0))
    assert out.shape == clip.shape and out.dtype == torch.uint8 and not torch.equal(out, clip)
    assert torch.equal(st.ColorJitter(0, 0, 0, 0)(clip, random.Random(0)), clip)


@pytest.mark.parametrize('value_scale,dataset,no_mean,no_std', [
    (1, 'kinetics', False, False), (255, 'activitynet', False, True), (1, '0.5', True, False),
])
def test_clip_normalize_equals_totensor_scalevalue_normalize(value_scale, dataset, no_mean, no_std):
    clip = frames_clip()
    mean, std = st.get_mean_std(value_scale, dataset, no_mean, no_std)
    ours = st.ClipNormalize(mean, std, value_scale)(clip)
    ref = st.Normalize(mean, std)(st.ScaleValue(value_scale)(clip.float() / 255))
    assert ours.dtype == torch.float32 and torch.allclose(ours, ref, atol=1e-5)
    batch = st.ClipNormalize(mean, std, value_scale)(clip[None].repeat(2, 1, 1, 1, 1))
    assert torch.allclose(batch[1], ref, atol=1e-5)


def test_mean_std_tables_are_the_original():
    assert st.get_mean_std() == ([0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737])
    mean, std = st.get_mean_std(255, 'activitynet')
    assert mean == pytest.approx([114.1635, 107.3295, 99.603]) and std == pytest.approx([70.5585, 68.7225, 69.207])
    assert st.get_mean_std(1, '0.5', no_mean_norm=True, no_std_norm=True) == ([0.0] * 3, [1.0] * 3)
    with pytest.raises(ValueError):
        st.get_mean_std(1, 'imagenet')


def test_flow_clips_normalise_with_the_first_two_channels():
    flow = frames_clip()[:2]
    mean, std = st.get_mean_std()
    out = st.ClipNormalize(mean, std)(flow)
    assert out.shape[0] == 2
    assert torch.allclose(out[1], (flow[1].float() / 255 - mean[1]) / std[1])
    assert st.PickFirstChannels(2)(frames_clip()).shape[0] == 2


def test_flipping_a_flow_clip_reverses_horizontal_motion():
    clip = torch.stack([torch.full((2, 4, 6), 200, dtype=torch.uint8),    # u: moving right
                        torch.full((2, 4, 6), 100, dtype=torch.uint8)])   # v: moving up
    clip[0, :, :, 0] = 128
    out = st.RandomHorizontalFlip(p=1.0, flow=True)(clip, random.Random(0))
    assert out.dtype == torch.uint8
    assert (out[0, :, :, :5] == 55).all() and (out[0, :, :, 5] == 127).all()  # mirrored and negated
    assert torch.equal(out[1], clip[1].flip(-1))


def test_compose_hands_its_generator_only_to_random_transforms():
    clip = frames_clip(h=48, w=64)
    train = st.Compose([st.RandomResizedCrop(32), lambda x: x + 1, st.RandomHorizontalFlip(), st.ColorJitter()])
    assert train.needs_rng and not st.Compose([st.Resize(32), st.CenterCrop(32)]).needs_rng
    random.seed(0)
    state = random.getstate()
    out = train(clip, random.Random(5))
    assert random.getstate() == state  # nothing drawn from the global generator
    random.seed(99)
    assert torch.equal(out, train(clip, random.Random(5)))
    assert not torch.equal(out, train(clip, random.Random(6)))
    assert st.Compose([st.Resize(32), st.CornerCrop(16, 'tl')])(clip).shape == (3, 4, 16, 16)
    with pytest.raises(TypeError, match='RandomResizedCrop draws random parameters'):
        train(clip)
    with pytest.raises(TypeError, match='CornerCrop'):
        st.CornerCrop(16)(clip)
