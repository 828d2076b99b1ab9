"""--decode_device: workers read bytes, the main process decodes and transforms; same clips as the worker path."""
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader

import datasets
import opts
from datasets.device_decode import DeviceDecoding, data_loader, defer, finish_batch, keep_samples
from common.errors import UserError
from preprocessing import Preprocessing
from tests.video_fixtures import make_dataset


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return {ft: (root / ft, make_dataset(root / ft, ft, h=96, w=128, n_train=3)) for ft in ('jpg', 'hdf5')}


def options(data, file_type, *extra):
    root, ann = data[file_type]
    return opts.parse_opts(['--video_path', str(root), '--annotation_path', str(ann), '--file_type', file_type,
                            '--sample_size', '40', '--sample_duration', '8', '--n_threads', '0',
                            '--jpeg_decode', 'full', *extra])


def assert_same_batch(a, b):
    assert torch.equal(a['clip'], b['clip']) and a['clip'].dtype == torch.uint8
    assert torch.equal(a['label'], b['label'])
    assert (a['video_id'], a['segment'], a['bad_frames'], a['views']) == \
        (b['video_id'], b['segment'], b['bad_frames'], b['views'])


@pytest.mark.parametrize('file_type', ['jpg', 'hdf5'])
def test_training_clips_decoded_in_the_main_process_equal_the_workers(data, file_type):
    opt = options(data, file_type, '--colorjitter')
    worker, deferred = datasets.get_training_data(opt), defer(datasets.get_training_data(opt))
    items = [(i, 1000 + i) for i in range(len(worker))] * 3  # the sampler's (index, seed) pairs
    samples = [deferred[item] for item in items]
    assert all(set(s) == {'deferred'} and s['deferred'].blobs for s in samples)  # only bytes crossed over
    finished = finish_batch(deferred, samples, torch.device('cpu'))
    assert_same_batch(datasets.collate(finished), datasets.collate([worker[item] for item in items]))


def test_multi_view_validation_through_a_dataloader_with_workers(data):
    opt = options(data, 'jpg', '--n_val_samples', '2')
    prep = replace(Preprocessing.from_opts(opt), inference_crop='three', inference_flip=True, inference_clips=2)
    plain = datasets.get_inference_data(opt, prep)
    wrapped = DeviceDecoding(DataLoader(defer(datasets.get_inference_data(opt, prep)), batch_size=2, num_workers=1,
                                        collate_fn=keep_samples), torch.device('cpu'), datasets.collate)
    batches = list(wrapped)
    reference = list(DataLoader(plain, batch_size=2, collate_fn=datasets.collate))
    assert len(batches) == len(reference) == len(wrapped) and batches[0]['views'] == 6
    for a, b in zip(batches, reference):
        assert_same_batch(a, b)


def test_bad_and_missing_frames_are_replaced_and_counted_the_same_way(data, tmp_path):
    import shutil
    root = tmp_path / 'jpg'
    shutil.copytree(data['jpg'][0], root)
    folder = root / 'jump' / 'jump_0'
    (folder / 'image_00003.jpg').write_bytes(b'\xff\xd8 broken')
    (folder / 'image_00005.jpg').unlink()
    opt = opts.parse_opts(['--video_path', str(root), '--annotation_path', str(data['jpg'][1]), '--file_type', 'jpg',
                           '--sample_size', '40', '--sample_duration', '8', '--jpeg_decode', 'full',
                           '--train_t_crop', 'center'])
    worker, deferred = datasets.get_training_data(opt), defer(datasets.get_training_data(opt))
    index = [r.video_id for r in worker.records].index('jump_0')
    a = worker[(index, 7)]
    b = finish_batch(deferred, [deferred[(index, 7)]], torch.device('cpu'))[0]
    assert a['bad_frames'] == b['bad_frames'] == 2 and torch.equal(a['clip'], b['clip'])


def test_frames_of_another_size_are_judged_by_the_videos_majority_as_in_a_worker(data, tmp_path):
    """Where most of a clip's frames have another size than most of the video's, the video's
    majority decides which are replaced, in the main process as in a worker."""
    import shutil

    from PIL import Image
    root = tmp_path / 'jpg'
    shutil.copytree(data['jpg'][0], root)
    folder = root / 'jump' / 'jump_0'
    for n in range(3, 8):  # 5 of the clip's 8 frames, a minority of the video's
        path = folder / f'image_{n:05d}.jpg'
        Image.open(path).resize((64, 48)).save(path)
    opt = opts.parse_opts(['--video_path', str(root), '--annotation_path', str(data['jpg'][1]), '--file_type', 'jpg',
                           '--sample_size', '40', '--sample_duration', '8', '--jpeg_decode', 'full',
                           '--train_t_crop', 'center'])
    worker, deferred = datasets.get_training_data(opt), defer(datasets.get_training_data(opt))
    index = [r.video_id for r in worker.records].index('jump_0')
    assert worker.records[index].frames.stop > 12  # the video has more frames of its own size than the clip
    a = worker[(index, 7)]
    b = finish_batch(deferred, [deferred[(index, 7)]], torch.device('cpu'))[0]
    assert a['bad_frames'] == b['bad_frames'] == 5 and torch.equal(a['clip'], b['clip'])


def test_loaders_that_are_not_jpeg_clips_are_refused(data, tmp_path):
    with pytest.raises(SystemExit):
        opts.parse_opts(['--file_type', 'video', '--decode_device', 'cuda'])
    dataset = datasets.get_training_data(options(data, 'jpg'))
    with pytest.raises(UserError, match='CUDA device'):
        data_loader(dataset, torch.device('cpu'), True, batch_size=2, collate_fn=datasets.collate)
    dataset.loader = datasets.VideoLoader()
    with pytest.raises(UserError, match='jpg or hdf5'):
        defer(dataset)


@pytest.mark.gpu
def test_cuda_decoding_matches_the_cpu_workers_closely(data):
    opt = options(data, 'jpg')
    worker, deferred = datasets.get_training_data(opt), defer(datasets.get_training_data(opt))
    items = [(i, 50 + i) for i in range(len(worker))]
    loader = data_loader(deferred, torch.device('cuda'), True, batch_size=len(items), collate_fn=datasets.collate,
                         sampler=items)
    batch = next(iter(loader))
    reference = datasets.collate([worker[item] for item in items])
    assert batch['clip'].device.type == 'cuda' and batch['clip'].shape == reference['clip'].shape
    # nvJPEG and libjpeg-turbo round differently; the crops and flips are the same draws
    assert (batch['clip'].cpu().float() - reference['clip'].float()).abs().mean() < 2
