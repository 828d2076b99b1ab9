"""Multi-view testing: N uniform clips x 3 crops x 2 flips per video, their positions, average and record."""
import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import inference
import main as main_module
import spatial_transforms as st
from datasets import MultiClipDataset, VideoList, VideoRecord, collate
from preprocessing import (Preprocessing, add_view_arguments, inference_transforms, normalization,
                                    spatial_views, views_from)
from models import MODEL_DEFAULTS, generate_model, save_checkpoint
from models.summary import summarize
from tests.conftest import randomize_bn_stats
from tests.video_fixtures import make_dataset, moving_frames, write_video

CFG = dict(model='resnet', model_depth=10, n_classes=3, resnet_widen_factor=0.25)
H, W, SIZE, FRAMES = 16, 48, 16, 40
VIEWS = dict(inference_clips=4, inference_crop='three', inference_flip=True)


def marked_video() -> torch.Tensor:
    """T x C x H x W: red is the region (left/centre/right third), green the column, blue the frame index."""
    video = torch.zeros(FRAMES, 3, H, W, dtype=torch.uint8)
    columns = torch.arange(W)
    video[:, 0] = (10 * (1 + columns // SIZE)).view(1, 1, W)
    video[:, 1] = columns.view(1, 1, W)
    video[:, 2] = torch.arange(FRAMES).view(FRAMES, 1, 1)
    return video


def marked_dataset(prep: Preprocessing) -> MultiClipDataset:
    video = marked_video()

    def loader(path, indices):
        return video[indices], 0
    temporal, spatial = inference_transforms(prep)
    record = VideoRecord('v', 0, Path('v'), range(FRAMES), (0, FRAMES))
    return MultiClipDataset(VideoList(['a', 'b', 'c'], [record]), loader, temporal, spatial)


def expected_views(prep: Preprocessing):
    """(frame indices, crop left, flipped) of every view, clip by clip, view by view, by hand."""
    starts = [int(17 * (i + 0.5) / 4) for i in range(4)]  # 20 subsampled frames, 4-frame clips: 17 starts
    lefts = {'start': 0, 'center': 16, 'end': 32}
    return [([2 * (s + j) for j in range(4)], lefts[crop], flip)
            for s in starts for crop in ('start', 'center', 'end') for flip in (False, True)]


PREP = Preprocessing(sample_size=SIZE, sample_duration=4, sample_t_stride=2, **VIEWS)


def test_the_views_of_a_video_are_the_expected_clips_and_crops():
    sample = marked_dataset(PREP)[0]
    assert spatial_views(PREP) == ['start', 'start-flip', 'center', 'center-flip', 'end', 'end-flip']
    assert sample['views'] == 6 and sample['clips'].shape == (24, 3, 4, SIZE, SIZE)
    assert [s[0] for s in sample['segments']] == [4, 12, 20, 28]
    for clip, (frames, left, flip) in zip(sample['clips'], expected_views(PREP)):
        columns = list(range(left, left + SIZE))[::-1 if flip else 1]
        assert clip[2, :, 0, 0].tolist() == frames  # blue: the clip's frames
        assert clip[1, 0, 0].tolist() == columns  # green: the columns, mirrored in a flipped view
        assert set(clip[0].flatten().tolist()) == {10 * (1 + left // SIZE)}  # red: one region only


def test_the_video_score_is_the_mean_over_all_views_and_segments_average_their_views():
    model = randomize_bn_stats(generate_model(**CFG)).eval()
    loader = torch.utils.data.DataLoader(marked_dataset(PREP), batch_size=1, collate_fn=collate)
    normalize = normalization(PREP)
    scores, _ = inference.infer(loader, model, torch.device('cpu'), normalize, show_progress=False, max_clips=5)
    video = marked_video().transpose(0, 1)  # C x T x H x W
    by_hand = []
    with torch.no_grad():
        for frames, left, flip in expected_views(PREP):
            x = video[:, frames, :, left:left + SIZE]
            x = x.flip(-1) if flip else x
            by_hand.append(F.softmax(model(normalize(x.unsqueeze(0))), dim=1)[0])
    assert len(scores['v']) == 4  # one entry per clip: its 6 views averaged
    assert torch.allclose(inference.video_scores(scores)['v'], torch.stack(by_hand).mean(0), atol=1e-5)
    for k, (segment, probs) in enumerate(sorted(scores['v'], key=lambda c: c[0])):
        assert torch.allclose(probs, torch.stack(by_hand[6 * k:6 * k + 6]).mean(0), atol=1e-5)
    per_segment = inference.results_json(scores, ['a', 'b', 'c'], 0, average=False)['results']['v']
    assert [e['segment'] for e in per_segment] == [[4, 11], [12, 19], [20, 27], [28, 35]]


@pytest.mark.parametrize('h, w, side, boxes', [
    (16, 48, 0, [(0, 0), (0, 16), (0, 32)]),  # landscape: left, centre, right
    (48, 16, 0, [(0, 0), (16, 0), (32, 0)]),  # portrait: top, centre, bottom
    (16, 48, 24, [(4, 0), (4, 28), (4, 56)]),  # short side 24 first (72 x 24), centred across it
])
def test_three_crops_lie_along_the_longer_side(h, w, side, boxes):
    prep = Preprocessing(sample_size=SIZE, sample_duration=1, inference_crop='three', inference_short_side=side)
    frame = torch.randint(0, 255, (3, 2, h, w), dtype=torch.uint8)
    _, spatial = inference_transforms(prep)
    views = spatial(frame)
    scaled = st.Resize(side or SIZE)(frame)
    assert [tuple(v.shape) for v in views] == [(3, 2, SIZE, SIZE)] * 3
    for view, (top, left) in zip(views, boxes):
        assert torch.equal(view, scaled[..., top:top + SIZE, left:left + SIZE])


def test_old_checkpoints_get_the_original_protocol_and_one_view_is_the_original_pipeline():
    old = Preprocessing.from_checkpoint({'preprocessing': {'sample_size': 16, 'sample_duration': 4}})
    assert (old.inference_clips, old.inference_crop, old.inference_short_side, old.inference_flip) == \
        (0, 'center', 0, False)
    clip = torch.randint(0, 255, (3, 4, 30, 50), dtype=torch.uint8)
    _, spatial = inference_transforms(old)
    assert torch.equal(spatial(clip), st.Compose([st.Resize(16), st.CenterCrop(16)])(clip))
    with pytest.raises(ValueError, match='inference_short_side=8 below'):
        Preprocessing.from_checkpoint({'preprocessing': {'sample_size': 16, 'inference_short_side': 8}})


def test_predict_takes_the_view_flags_and_prints_views_and_cost(tmp_path, capsys):
    path = save_checkpoint(tmp_path / 'model.pth', generate_model(**CFG).eval(), CFG, class_names=['a', 'b', 'c'],
                           mean=[0.5] * 3, std=[0.5] * 3, sample_size=32, sample_duration=8)
    video = write_video(tmp_path / 'a.mp4', moving_frames(20, 40, 56))
    assert inference.predict([str(video), '--resume_path', str(path), '--inference_clips', '2',
                              '--inference_crop', 'three', '--inference_flip', '--inference_short_side', '36',
                              '--output', str(tmp_path / 'out.json'), '--no_cuda']) == 0
    out = capsys.readouterr().out
    assert 'views: 2 clips x 3 crops (short side 36) x 2 flips: 12 per video' in out
    gflops = float(out.split(' GFLOPs per view')[0].rsplit(' ', 1)[1])
    assert gflops == pytest.approx(summarize(dict(MODEL_DEFAULTS, **CFG), 32, 8)['gmacs'], rel=1e-3)
    assert list(json.loads((tmp_path / 'out.json').read_text())['results']) == ['a.mp4']
    assert json.loads((tmp_path / 'out_views.json').read_text())['views_per_video'] == 12


def test_main_inference_records_the_views_their_cost_and_the_metrics(tmp_path, capsys):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(12, 20, 9, 16), h=24, w=40)
    cfg = dict(CFG, n_classes=2)
    ckpt = save_checkpoint(tmp_path / 'm.pth', generate_model(**cfg).eval(), cfg, sample_size=16, sample_duration=4)
    result = tmp_path / 'r'
    assert main_module.main(['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path',
                             str(result), '--resume_path', str(ckpt), '--no_train', '--no_val', '--inference',
                             '--sample_size', '16', '--sample_duration', '4', '--n_threads', '0', '--no_progress',
                             '--inference_clips', '3', '--inference_crop',
                             'three', '--inference_short_side', '20', '--inference_no_average']) == 0
    assert 'views: 3 clips x 3 crops (short side 20): 9 per video' in capsys.readouterr().out
    assert main_module.main(['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path',
                             str(tmp_path / 'bad'), '--resume_path', str(ckpt), '--no_train', '--no_val',
                             '--inference', '--sample_size', '16', '--inference_crop', 'three',
                             '--inference_short_side', '12']) == 2
    assert "--inference_short_side 12 is below the model's 16-pixel crop" in capsys.readouterr().err
    record = json.loads((result / 'val_views.json').read_text())
    assert record['views_per_video'] == 9 and record['view_shape'] == [3, 4, 16, 16] and record['videos'] == 2
    assert record['gflops_per_video'] == pytest.approx(9 * record['gflops_per_view'])
    per_segment = json.loads((result / 'val.json').read_text())['results']
    assert sorted(per_segment) == ['jump_1', 'wave_1'] and all(len(v) == 3 for v in per_segment.values())


def test_inference_py_keeps_the_recorded_views_unless_a_flag_replaces_them():
    parser = argparse.ArgumentParser()
    add_view_arguments(parser, recorded=True)
    recorded = Preprocessing(sample_size=SIZE, inference_clips=10, inference_crop='three', inference_short_side=20)
    assert views_from(recorded, parser.parse_args([])) == recorded
    changed = views_from(recorded, parser.parse_args(['--inference_clips', '0', '--inference_flip']))
    assert (changed.inference_clips, changed.inference_crop, changed.inference_flip) == (0, 'three', True)
