"""--repeat_aug K: K clips per read of a training video, each its own temporal position and spatial
draw, the video read and its frames decoded once; the batch and the logs count K clips per video."""
import pytest
import torch

import datasets
import datasets.encoded_clip as encoded_clip
from datasets.samplers import sample_seed
from opts import parse_opts
from tests.video_fixtures import make_dataset


def options(root, ann, *extra):
    return parse_opts(['--video_path', str(root), '--annotation_path', str(ann), '--result_path', str(root / 'r'),
                       '--n_classes', '2', '--sample_size', '24', '--sample_duration', '4',
                       '--train_crop_min_scale', '0.1', *extra])


class Counting:
    """A loader that counts its calls and the frames asked for."""

    def __init__(self, loader):
        self.loader, self.calls = loader, []

    def __call__(self, path, frames):
        self.calls.append(list(frames))
        return self.loader(path, frames)


def test_k_distinct_clips_from_one_read_and_each_frame_decoded_once_at_the_scale_its_clips_need(tmp_path,
                                                                                              monkeypatch):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(40,), n_train=2, h=96, w=128)  # crops of 1/1 to 1/4
    data = datasets.get_training_data(options(tmp_path / 'jpg', ann, '--repeat_aug', '3'))
    data.loader = Counting(data.loader)
    heights, wants = [], []
    real = encoded_clip.simplejpeg.decode_jpeg
    monkeypatch.setattr(encoded_clip.simplejpeg, 'decode_jpeg',
                        lambda *a, **k: heights.append(k['min_height']) or real(*a, **k))
    shared = encoded_clip.EncodedClip.decode_shared
    monkeypatch.setattr(encoded_clip.EncodedClip, 'decode_shared', lambda self, w: wants.append(w) or shared(self, w))
    mixed = 0
    for seed in range(8):
        data.loader.calls, heights[:], wants[:] = [], [], []
        sample = data[(0, sample_seed(seed, 1, 0), ())]
        assert sample['clips'].shape == (3, 3, 4, 24, 24) and sample['clips'].dtype == torch.uint8
        assert len(data.loader.calls) == 1  # one read for the three clips
        union = data.loader.calls[0]
        assert len(union) == len(set(union)) and len(heights) == len(union)  # each frame decoded once
        finest = {}  # each frame at the finest scale of the clips that hold it, no finer
        for positions, d in wants[0]:
            for p in positions:
                finest[p] = min(d, finest.get(p, d))
        assert sorted(heights) == sorted(encoded_clip.scaled_size((96, 128), d)[0] for d in finest.values())
        mixed += len({d for _, d in wants[0]}) > 1
        clips = [sample['clips'][k] for k in range(3)]
        assert not all(torch.equal(clips[0], c) for c in clips[1:])
    assert mixed  # some samples had clips of different scales


def test_a_shared_clip_is_the_clip_decoded_alone_within_the_scaled_decode_tolerance(tmp_path):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(40,), n_train=2, h=96, w=128)
    data = datasets.get_training_data(options(tmp_path / 'jpg', ann))
    frames, _ = data.loader(data.records[0].path, list(range(1, 21)))
    alone = [frames.part(range(k, k + 8)) for k in (0, 6, 12)]
    frames.decode_shared([(range(0, 8), 4), (range(6, 14), 1), (range(12, 20), 2)])
    box = (8, 16, 64, 96)
    for k, (start, d) in enumerate([(0, 4), (6, 1), (12, 2)]):
        shared = frames.select(range(start, start + 8))
        got, want = shared.crop_resized(box, (24, 24)), alone[k].crop_resized(box, (24, 24))
        assert got.shape == want.shape == (3, 8, 24, 24)
        assert (got.float() - want.float()).abs().mean() < 4  # decoded finer where another clip needed it


def test_one_clip_is_the_plain_sample_and_the_batch_holds_k_clips_per_video(tmp_path):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(30,), n_train=2)
    plain = datasets.get_training_data(options(tmp_path / 'jpg', ann))
    repeated = datasets.get_training_data(options(tmp_path / 'jpg', ann, '--repeat_aug', '2'))
    item = (1, sample_seed(5, 2, 1), ())
    one, two = plain[item], repeated[item]
    assert torch.equal(one['clip'], two['clips'][0])  # the first clip draws as the plain sample does
    batch = datasets.collate([repeated[(i, sample_seed(5, 2, i), ())] for i in range(2)])
    assert batch['clip'].shape[0] == 4 and batch['label'].tolist()[0] == batch['label'].tolist()[1]
    assert batch['video_id'][0] == batch['video_id'][1] != batch['video_id'][2]


def test_a_video_file_is_read_once_for_its_k_clips(tmp_path):
    ann = make_dataset(tmp_path / 'video', 'video', n_frames=(36,), n_train=2)
    data = datasets.get_training_data(options(tmp_path / 'video', ann, '--repeat_aug', '4', '--file_type', 'video'))
    data.loader = Counting(data.loader)
    sample = data[(0, sample_seed(1, 1, 0), ())]
    assert sample['clips'].shape[:3] == (4, 3, 4) and len(data.loader.calls) == 1


def test_a_run_counts_k_clips_per_video(tmp_path):
    import main
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(12, 20, 9, 16), n_train=3)
    flags = ['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--n_classes', '2',
             '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size', '24',
             '--sample_duration', '4', '--batch_size', '4', '--n_threads', '0', '--n_epochs', '1', '--no_val',
             '--checkpoint', '0', '--no_progress', '--precision', 'fp32', '--cpu_threads', '1']
    for k in (1, 2):
        assert main.main([*flags, '--result_path', str(tmp_path / f'k{k}'), '--repeat_aug', str(k)]) == 0
        rows = [r.split('\t') for r in (tmp_path / f'k{k}' / 'train_batch.log').read_text().splitlines()[1:]]
        assert len(rows) == 6 // (4 // k) + (6 % (4 // k) > 0)  # 6 videos, 4 // k of them per batch of 4 clips
