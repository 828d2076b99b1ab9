"""Space-Time Cubic Puzzles: piece making, the 4-tower network, the dataset and a tiny training run."""
import math
import random
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datasets import EpochSampler, JpgLoader, VideoList, VideoRecord, load_video_list
from datasets.cubic_puzzle import KINDS, CubicPuzzleDataset, cell_size, collate_puzzles, make_puzzle
from models import generate_model
from models.cubic_puzzle import (N_PUZZLE_CLASSES, PERMUTATIONS, CubicPuzzleNet, puzzle_class_names,
                                 puzzle_label, split_label)
from tests.video_fixtures import make_dataset

# Pieces of 4 x 6 x 6 in cells of 6 x 9 x 9 (jitter 0.5): the whole 2 x 2 x 4 grid is 24 x 18 x 18.
PD, PS, JITTER = 4, 6, 0.5
CT, CS = cell_size(PD, JITTER), cell_size(PS, JITTER)
T, S = 4 * CT, 2 * CS


def position_clip(channels: int = 1) -> torch.Tensor:
    """A C x T x S x S int64 grid whose every voxel holds its own (c, t, y, x) as one number."""
    c, t, y, x = torch.meshgrid(torch.arange(channels), torch.arange(T), torch.arange(S), torch.arange(S),
                                indexing='ij')
    return ((c * T + t) * S + y) * S + x


def corner(piece: torch.Tensor) -> tuple:
    """(t, y, x) of a position-clip piece's first voxel."""
    v = int(piece[0, 0, 0, 0])
    return v // (S * S) % T, v // S % S, v % S


def puzzle(seed: int, kind: str, clip: torch.Tensor = None, **kwargs):
    """``make_puzzle`` on the test grid (the position clip by default) with ``random.Random(seed)``."""
    clip = position_clip() if clip is None else clip
    return make_puzzle(clip, kind, random.Random(seed), PD, PS, CT, CS, **kwargs)


def test_permutations_and_labels():
    assert len(PERMUTATIONS) == len(set(PERMUTATIONS)) == 24 and N_PUZZLE_CLASSES == 48
    assert all(sorted(p) == [0, 1, 2, 3] for p in PERMUTATIONS) and PERMUTATIONS[0] == (0, 1, 2, 3)
    for i, perm in enumerate(PERMUTATIONS):
        for flipped in (False, True):
            label = puzzle_label(i, flipped)
            assert split_label(label) == (perm, flipped) and (label >= 24) == flipped
    assert sorted(puzzle_label(i, f) for i in range(24) for f in (False, True)) == list(range(48))
    names = puzzle_class_names()
    assert len(set(names)) == 48 and names[3] == 'perm03' and names[27] == 'perm03-flipped'


@pytest.mark.parametrize('kind', KINDS)
def test_pieces_come_from_the_tuple_cells_in_label_order(kind):
    clip = position_clip()
    groups, offsets, perms = set(), set(), set()
    for seed in range(200):
        pieces, label = puzzle(seed, kind, channel_replication=False, rotation=False)
        assert pieces.shape == (4, 1, PD, PS, PS) and label < 24
        perm, _ = split_label(label)
        perms.add(perm)
        cells = []
        for k, piece in enumerate(pieces):
            t, y, x = corner(piece)
            assert torch.equal(piece, clip[:, t:t + PD, y:y + PS, x:x + PS])  # an intact block of the clip
            cell = (t // CT, y // CS, x // CS)
            assert cell == ((t + PD - 1) // CT, (y + PS - 1) // CS, (x + PS - 1) // CS)  # inside its cell
            offsets.add((t % CT, y % CS, x % CS))
            cells.append(cell)
        slots, rows_cols = {c[0] for c in cells}, {c[1:] for c in cells}
        if kind == 'spatial':  # 4 distinct spatial cells of one temporal slot
            assert len(slots) == 1 and len(rows_cols) == 4
            natural = [2 * r + c for _, r, c in cells]
            groups.add(slots.pop())
        else:  # the 4 consecutive temporal cells of one spatial cell
            assert len(rows_cols) == 1 and sorted(c[0] for c in cells) == [0, 1, 2, 3]
            natural = [c[0] for c in cells]
            groups.add(rows_cols.pop())
        assert natural == list(perm)  # slot k holds cell perm[k]
    assert len(groups) == 4 and len(perms) == 24  # every slot (or spatial cell) and permutation occurs
    for dim, room in enumerate((CT - PD, CS - PS, CS - PS)):  # jitter spans the whole room in every axis
        assert {o[dim] for o in offsets} == set(range(room + 1))


def test_rotation_flips_along_h_and_marks_the_label():
    flips = 0
    for seed in range(40):
        kind = KINDS[seed % 2]
        upright, plain = puzzle(seed, kind, channel_replication=False, rotation=False)
        pieces, label = puzzle(seed, kind, channel_replication=False, rotation=True)
        assert label % 24 == plain
        flips += label >= 24
        assert torch.equal(pieces, upright.flip(-2) if label >= 24 else upright)
    assert 10 < flips < 30


def test_channel_replication_copies_one_random_channel_per_piece():
    clip = position_clip(channels=3)
    chosen = set()
    for seed in range(30):
        plain, label = puzzle(seed, 'spatial', clip, channel_replication=False)
        pieces, same_label = puzzle(seed, 'spatial', clip, channel_replication=True)
        assert same_label == label and pieces.shape == plain.shape
        for piece, original in zip(pieces, plain):
            assert torch.equal(piece[0], piece[1]) and torch.equal(piece[0], piece[2])
            channel = [c for c in range(3) if torch.equal(piece[0], original[c])]
            assert len(channel) == 1
            chosen.add(channel[0])
    assert chosen == {0, 1, 2}
    flow = position_clip(channels=2)  # not RGB: left alone
    assert torch.equal(puzzle(3, 'temporal', flow)[0], puzzle(3, 'temporal', flow, channel_replication=False)[0])


def test_make_puzzle_rejects_clips_that_are_not_the_grid():
    with pytest.raises(ValueError, match='grid'):
        puzzle(0, 'spatial', position_clip()[:, :, :S - 1])
    with pytest.raises(ValueError, match='4 slots'):
        puzzle(0, 'temporal', position_clip()[:, :CT])
    with pytest.raises(ValueError, match='kind'):
        puzzle(0, 'diagonal')


def test_tower_network_on_resnet():
    net = CubicPuzzleNet(generate_model(model='resnet', model_depth=10, n_classes=5)).eval()
    assert net.feature_dim == 512 and net.classifier.in_features == 4 * 512 and net.classifier.out_features == 48
    plain = generate_model(model='resnet', model_depth=10, n_classes=5)
    assert set(net.backbone.state_dict()) == set(plain.state_dict()) - {'fc.weight', 'fc.bias'}
    x = torch.randn(2 * 4, 3, 8, 32, 32)
    with torch.no_grad():
        logits = net(x)
        features = net.backbone(x)
        by_hand = net.classifier(torch.cat([features[0:4].flatten(), features[4:8].flatten()]).view(2, -1))
        shuffled = net(x[[1, 0, 2, 3, 4, 5, 6, 7]])
    assert logits.shape == (2, 48) and torch.allclose(logits, by_hand, atol=1e-5)
    assert torch.allclose(shuffled[1], logits[1]) and not torch.allclose(shuffled[0], logits[0])
    fresh = generate_model(model='resnet', model_depth=10, n_classes=7)  # what fine-tuning does
    result = fresh.load_state_dict(net.backbone.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight'] and not result.unexpected_keys
    with pytest.raises(ValueError, match='puzzles of 4'):
        net(x[:6])


def test_tower_network_on_densenet():
    net = CubicPuzzleNet(generate_model(model='densenet', model_depth=121, n_classes=5))
    plain = generate_model(model='densenet', model_depth=121, n_classes=5)
    assert net.feature_dim == 1024
    assert set(net.backbone.state_dict()) == set(plain.state_dict()) - {'classifier.weight', 'classifier.bias'}
    assert net(torch.randn(4, 3, 16, 32, 32)).shape == (1, 48)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """Two jpg videos of 12 and 9 frames (shorter than a temporal tuple: loop-padded)."""
    root = tmp_path_factory.mktemp('puzzles')
    annotation = make_dataset(root / 'jpg', 'jpg')
    return load_video_list([annotation], [root / 'jpg'], 'training')


def dataset(videos: VideoList, **kwargs) -> CubicPuzzleDataset:
    """Puzzles of 4 x 16 x 16 pieces from jpg frames."""
    return CubicPuzzleDataset(videos, JpgLoader(), piece_duration=4, piece_size=16, **kwargs)


def same(a: dict, b: dict) -> bool:
    """Two samples are equal, clip included."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if k == 'clip' else a[k] == b[k] for k in a)


def test_dataset_samples(videos):
    data = dataset(videos)
    assert len(data) == 2 and len(data.class_names) == 48 and data.records is videos.records
    assert (data.cell_t, data.cell_s) == (5, 20)
    lengths = set()
    for seed in range(12):
        for index, record in enumerate(data.records):
            sample = data[(index, seed)]
            clip = sample['clip']
            assert clip.shape == (4, 3, 4, 16, 16) and clip.dtype == torch.uint8
            assert torch.equal(clip[:, 0], clip[:, 1]) and torch.equal(clip[:, 0], clip[:, 2])  # replication
            assert 0 <= sample['label'] < 48 and sample['bad_frames'] == 0
            assert sample['video_id'] == record.video_id
            first, stop = sample['segment']
            assert record.frames.start <= first < stop <= record.frames.stop
            lengths.add(stop - first)
    assert 5 in lengths and 9 in lengths and 12 in lengths  # spatial windows and loop-padded temporal ones


def test_dataset_seeding(videos):
    data = dataset(videos)
    assert same(data[(1, 7)], data[(1, 7)])
    assert not all(same(data[(1, 7)], data[(1, s)]) for s in range(8, 12))
    random.seed(3)
    first = data[0]
    random.seed(3)
    assert same(first, data[0])
    fixed = dataset(videos, fixed=True)
    assert same(fixed[0], fixed[0]) and same(fixed[0], fixed[(0, 99)]) and same(fixed[1], fixed[(1, 5)])
    assert not same(fixed[0], fixed[1])


def test_failed_videos_and_collate(videos, tmp_path):
    gone = VideoRecord('gone', -1, tmp_path / 'gone', range(1, 10), (1, 10))
    data = dataset(VideoList(['a'], videos.records + [gone]))
    with pytest.warns(UserWarning, match='gone'):
        failed = data[2]
    assert failed['video_id'] == 'gone' and 'not found' in failed['failed']
    batch = collate_puzzles([data[0], failed, data[1]])
    assert batch['clip'].shape == (8, 3, 4, 16, 16) and batch['label'].dtype == torch.long
    assert batch['label'].shape == (2,) and batch['video_id'] == ['jump_0', 'wave_0']
    assert len(batch['segment']) == 2 and batch['bad_frames'] == 0 and batch['failed'][0][0] == 'gone'
    assert collate_puzzles([failed])['clip'] is None
    loader = DataLoader(dataset(videos), batch_size=2, sampler=EpochSampler(2, seed=1), collate_fn=collate_puzzles)
    assert next(iter(loader))['clip'].shape == (8, 3, 4, 16, 16)


def test_corrupt_video_is_a_failed_sample(videos, tmp_path):
    folder = tmp_path / 'broken'
    shutil.copytree(videos.records[0].path, folder)
    for frame in folder.iterdir():
        frame.write_bytes(b'not a jpeg')
    record = VideoRecord('broken', 0, folder, range(1, 13), (1, 13))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        sample = dataset(VideoList(['a'], [record]))[0]
    assert sample['video_id'] == 'broken' and 'no decodable frame' in sample['failed']


def ramp_clip(seed: int) -> torch.Tensor:
    """3 x T x H x W uint8 ramps (R along y, G along x, B along t): every cell has its own colour."""
    t, y, x = torch.meshgrid(torch.arange(20), torch.arange(40), torch.arange(40), indexing='ij')
    shift = torch.rand(3, generator=torch.Generator().manual_seed(seed)) * 40 - 20
    return torch.stack([20 + 5 * y + shift[0], 20 + 5 * x + shift[1], 20 + 10 * t + shift[2]]).to(torch.uint8)


def test_puzzle_training_learns_the_arrangement():
    torch.manual_seed(0)
    rng = random.Random(0)
    clips = [ramp_clip(s) for s in range(4)]
    net = CubicPuzzleNet(generate_model(model='resnet', model_depth=10, n_classes=5, resnet_widen_factor=0.25,
                                        conv1_t_size=3))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        samples = [make_puzzle(rng.choice(clips), rng.choice(KINDS), rng, 4, 16, 5, 20, channel_replication=False)
                   for _ in range(8)]
        x = torch.cat([p for p, _ in samples]).float() / 127.5 - 1
        loss = F.cross_entropy(net(x), torch.tensor([label for _, label in samples]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < math.log(48) - 1.0 and last < first - 1.0, losses
