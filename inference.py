"""Video-level inference: sliding-window clips, softmax averaged per video, the original's JSON.

Multi-label models (``--multilabel``) give per-label sigmoid scores instead, averaged the same way.

Used by ``main.py --inference`` on an annotated subset, and runnable on any video files:

    python inference.py VIDEO [VIDEO ...] --resume_path CKPT [--output OUT.json] [--output_topk 5]
                        [--features OUT.hdf5|OUT_DIR] [--inference_stride N] [--batch_size 32] [--no_cuda]
                        [--inference_clips N] [--inference_crop center|nocrop|three]
                        [--inference_short_side S] [--inference_flip] [--precision auto|fp32|bf16|fp16]
                        [--inference_no_average] [--timeline OUT_DIR [--timeline_smooth N]
                        [--timeline_min_segment S]]

which decodes the files directly (PyAV) and preprocesses them exactly as the checkpoint
records (``preprocessing``: clip size and length, temporal stride, normalisation,
and the views, which the ``--inference_*`` flags replace), prints the top-k labels per file
and, with ``--output``, writes the results JSON that ``main.py --inference`` writes, keyed
by each file's path relative to the common folder of the inputs, and beside it the views per
video and their cost (``<stem>_views.json``). ``--precision auto`` (the default) probes the fastest
math for inference on the CPU (``runs.math_choice``; its line goes to stderr) and takes bf16 on GPUs
that support it. ``--features`` saves the pooled
pre-classifier features of every clip and their per-video mean (one .hdf5 file, or .npy
files in a folder), under the same keys. ``--timeline`` streams each video through the model window
by window instead (``streams.timeline``): a timeline JSON and picture per video, memory flat.
"""
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.atomic import atomic_write_json
from common.progress import progress
from distributed.collectives import gather_objects
from evaluation.clip_scores import Clip, canonical_clips, merge_clips
from evaluation.features import save_features
from models.factory import head_of
from models.precision import autocast
from preprocessing import to_device
from runs.stopping import Lockstep, StopSignals, death_anywhere, fetch_batches

ClipScores = Dict[str, List[Clip]]  # id -> [(segment, softmax)]
ClipFeatures = Dict[str, List[Clip]]  # id -> [(segment, features)]


class Interrupted(Exception):
    """A stop signal (or a dead DataLoader worker: ``died`` says how, on its rank) ended inference: nothing written."""

    def __init__(self, phase: str, died: Optional[str] = None):
        super().__init__(phase)
        self.died = died


@torch.no_grad()
def infer(loader: Iterable[Dict[str, Any]], model: nn.Module, device: torch.device, normalize: Callable, *,
          amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
          show_progress: bool = True, multilabel: bool = False, features: Optional[ClipFeatures] = None,
          should_stop: Optional[Callable[[bool], bool]] = None, steps: Optional[int] = None, max_clips: int = 0
          ) -> Tuple[ClipScores, Dict[str, int]]:
    """Softmax (multi-label: per-label sigmoid) scores of every clip, grouped by video, and the fault counts.

    With a ``features`` dict, the pooled pre-classifier features of every clip are added to it.
    ``should_stop(worker_died_here)`` is asked after every batch, every rank as often (``steps``:
    ``runs.stopping.Lockstep``); if it says so, or a DataLoader worker died, ``Interrupted`` is raised
    (its ``died`` says how, when the worker was this rank's).
    ``max_clips`` > 0 splits a batch into forward passes of at most that many clips. A clip
    with several spatial views (``batch['views']``: crops, flips) gets the mean of its views'
    scores (and features): one entry per clip and segment, as with one view.
    """
    model.eval()
    scores: ClipScores = {}
    faults = {'bad_frames': 0, 'failed_videos': 0}
    total = len(loader) if hasattr(loader, '__len__') else None
    batches = fetch_batches(loader)
    walk = Lockstep(progress(batches, total=total, desc='inference', enabled=show_progress), steps, should_stop)
    try:
        for batch in walk:
            if batch is not None:
                _score_clips(batch, model, device, normalize, amp_dtype, channels_last, multilabel, features,
                             max_clips, scores, faults)
    finally:
        batches.close()
    if walk.interrupted:
        raise Interrupted('inference', walk.died)
    return scores, faults


def _score_clips(batch: Dict[str, Any], model: nn.Module, device: torch.device, normalize: Callable,
                 amp_dtype: Optional[torch.dtype], channels_last: bool, multilabel: bool,
                 features: Optional[ClipFeatures], max_clips: int, scores: ClipScores, faults: Dict[str, int]) -> None:
    """One batch's clip scores (and features) added to ``scores`` (and ``features``), its faults to ``faults``."""
    faults['bad_frames'] += batch['bad_frames']
    faults['failed_videos'] += len(batch['failed'])
    clips, views = batch['clip'], batch.get('views', 1)
    step = max_clips if max_clips > 0 else max(1, len(clips) if clips is not None else 1)
    probs, pooled = [], []
    for start in range(0, 0 if clips is None else len(clips), step):
        x = to_device(clips[start:start + step], device, normalize, channels_last)
        with autocast(device, amp_dtype):
            p = model.forward_features(x) if features is not None else None
            logits = (model(x) if p is None else head_of(model)(p)).float()
        probs.append((torch.sigmoid(logits) if multilabel else F.softmax(logits, dim=1)).cpu())
        pooled += [] if p is None else [p.float().cpu()]
    per_clip = (_view_mean(probs, views), _view_mean(pooled, views) if pooled else None)
    for i, (vid, segment) in enumerate(zip(batch['video_id'][::views], batch['segment'][::views])):
        scores.setdefault(vid, []).append((tuple(segment), per_clip[0][i]))
        if per_clip[1] is not None:
            features.setdefault(vid, []).append((tuple(segment), per_clip[1][i]))


def _view_mean(chunks: List[torch.Tensor], views: int) -> torch.Tensor:
    """Consecutive groups of ``views`` rows (the views of one clip) -> their mean, one row per clip."""
    if not chunks:
        return torch.zeros(0)
    rows = torch.cat(chunks)
    return rows.view(-1, views, *rows.shape[1:]).mean(1) if views > 1 else rows


def _ranked(probs: torch.Tensor, class_names: Sequence[str], topk: int) -> List[Dict[str, Any]]:
    k = len(class_names) if topk <= 0 else min(topk, len(class_names))
    values, indices = probs.topk(k)
    return [{'label': class_names[i], 'score': float(v)} for v, i in zip(values.tolist(), indices.tolist())]


def gather_clips(clips: ClipScores) -> ClipScores:
    """Every rank's clips merged (``merge_clips``) on every rank; one process: its own, ordered alike.

    A collective call under distributed: every rank calls it at the same point. The means over a
    video's clips are then taken in the same order whatever the number of processes.
    """
    return merge_clips(gather_objects(clips))


def video_scores(scores: ClipScores) -> Dict[str, torch.Tensor]:
    """Per video, the mean of its clips' scores (taken in ``canonical_clips``' order)."""
    return {vid: torch.stack([p for _, p in canonical_clips(clips)]).mean(0) for vid, clips in scores.items()}


def results_json(scores: ClipScores, class_names: Sequence[str], topk: int = 5,
                 average: bool = True) -> Dict[str, Any]:
    """The original's inference JSON: per video the top-k of the mean clip softmax, or per segment.

    ``topk`` <= 0 lists every class (of the model's own head: the fine-tuned one). A video with
    a NaN or infinite score in any clip is left out (the JSON never holds NaN) and reported: a
    warning on stderr with their count and the first names.
    """
    out: Dict[str, Any] = {}
    broken = [vid for vid, clips in scores.items() if not all(bool(torch.isfinite(p).all()) for _, p in clips)]
    if broken:
        print(f"warning: {len(broken)} videos with non-finite scores left out of the results: "
              f"{', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}", file=sys.stderr, flush=True)
    skipped = set(broken)
    for vid, clips in scores.items():
        if vid in skipped:
            continue
        clips = canonical_clips(clips)
        if average:
            out[vid] = _ranked(torch.stack([p for _, p in clips]).mean(0), class_names, topk)
        else:
            out[vid] = [{'segment': list(seg), 'result': _ranked(p, class_names, topk)} for seg, p in clips]
    return {'results': out}


def top_rankings(means: Dict[str, torch.Tensor], class_names: Sequence[str], videos: Iterable[str],
                 k: int = 5) -> Dict[str, List[Tuple[str, float]]]:
    """Per video of ``videos``, its ``k`` best (label, score) pairs: the rankings the reports' top-5 needs."""
    return {vid: [(r['label'], r['score']) for r in _ranked(means[vid], class_names, k)] for vid in videos}


# ----------------------------------------------------------------------------- an annotated subset

def infer_subset(opt: Any, proc: Any, state: Any, loader_args: Dict[str, Any],
                 stop: StopSignals) -> Optional[Dict[str, Any]]:
    """``main.py --inference``: scores of ``--inference_subset`` over the views the inference flags
    ask for, preprocessed as the model was trained (``state.preprocessing``), sharded over the
    ranks; rank 0 writes the results JSON and, for a labelled subset, scores it and writes the
    per-class reports beside it, and the views, their cost and the metrics (``<subset>_views.json``).

    ``proc`` is main's process (rank, world, local_world, device, master, show_progress).
    Returns None when done; when a stop signal or a dead DataLoader worker (on any rank) ended the
    pass, nothing is written and the result says so (``worker_died``), as main's ``stopped`` takes it.
    """
    import datasets
    from datasets.device_decode import data_loader
    from datasets.formats.annotation_json import canonical_subset
    from distributed.collectives import max_over_ranks, reduce_sums
    from models.inference_cost import cost_text, first_frame_size, summary_path, view_cost
    from models.precision import set_layout
    from preprocessing import Preprocessing, normalization, with_views
    from runs.run_logs import fault_text
    from validation import score_inference

    prep = with_views(Preprocessing(**state.preprocessing), opt)
    infer_data = datasets.get_inference_data(opt, prep)
    datasets.require_videos(f'inference ({opt.inference_subset})', infer_data, proc.master)
    names = state.class_names or infer_data.class_names
    datasets.check_class_count(names, state.options['n_classes'])
    batch = max(1, (opt.inference_batch_size or opt.batch_size) // proc.local_world)
    shard = datasets.rank_share(infer_data, proc.rank, proc.world, batch, loader_args['num_workers'])
    loader = data_loader(shard, proc.device, opt.decode_device == 'cuda', batch_size=batch, **loader_args)
    started = time.perf_counter()
    math = state.math.inference  # the run's math for inference (runs.math_choice)
    set_layout(state.model, math.channels_last)
    try:
        scores, faults = infer(loader, state.model, proc.device, normalization(prep),
                               amp_dtype=math.dtype, channels_last=math.channels_last,
                               show_progress=proc.show_progress, multilabel=opt.multilabel, should_stop=stop,
                               steps=int(max_over_ranks(len(loader), proc.device)),  # every rank asks as often
                               max_clips=max(1, opt.batch_size // proc.local_world))  # --batch_size is per node
    except Interrupted as e:  # on every rank at once: the question after each batch is a collective
        return {'worker_died': death_anywhere(e.died, proc.device)}
    scores, faults = gather_clips(scores), reduce_sums(faults, proc.device)
    if proc.master:
        results = results_json(scores, names, opt.output_topk, not opt.inference_no_average)
        out = atomic_write_json(opt.result_path / f'{opt.inference_subset}.json', results)
        line, m = f'inference: {len(scores)} videos -> {out}', {}
        cost = view_cost(state.model, prep, opt.inference_stride, [len(c) for c in scores.values()],
                         first_frame_size(infer_data) if prep.inference_crop == 'nocrop' else None,
                         time.perf_counter() - started)
        if not opt.inference_no_average:
            means = video_scores(scores)
            m, text = score_inference(means, infer_data.records, names, opt.multilabel,
                                      canonical_subset(opt.inference_subset))
            line += text
            if m and not opt.multilabel:
                from evaluation.reports import write_reports
                ranked = top_rankings(means, names, results['results'])  # top-5 whatever --output_topk is
                write_reports(out, {r.video_id: names[r.label] for r in infer_data.records
                                    if r.label >= 0 and r.video_id in ranked}, ranked, names)
                from visuals.annotate import write_examples
                write_examples(infer_data, means, names, prep, out.with_name(f'{out.stem}_examples.png'))
        atomic_write_json(summary_path(out), {**cost, 'metrics': m})
        print(line + fault_text(faults) + '\n' + cost_text(cost))
    return None


# ----------------------------------------------------------------------------- any video file

def unique_keys(paths: Sequence[Any]) -> Dict[Any, str]:
    """Each file's path relative to the common folder of all of them ('/'-separated): never two alike;
    standard input (``-``) is ``stdin``, a URL its host and path with ``_`` for what a file name cannot hold."""
    import re
    files = [p for p in paths if isinstance(p, Path)]
    keys: Dict[Any, str] = {p: 'stdin' if p == '-' else re.sub(r'[^\w.-]+', '_', p.split('://', 1)[1]).strip('_')
                            for p in paths if not isinstance(p, Path)}
    if files:
        resolved = [p.resolve() for p in files]
        root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
        keys.update({p: r.relative_to(root).as_posix() for p, r in zip(files, resolved)})
    return keys


def write_results(args: Any, scores: ClipScores, names: Sequence[str]) -> None:
    """``inference.py --output``: the results JSON (per window with ``--inference_no_average``), atomically."""
    results = results_json(scores, names, args.output_topk, not args.inference_no_average)
    print(f'results of {len(scores)} videos -> {atomic_write_json(args.output, results)}')


def predict(argv: Optional[List[str]] = None) -> int:
    """CLI: top-k labels (and optionally a results JSON and features) for video files, from a checkpoint."""
    from common.cli import NATURAL, POSITIVE, OneLineParser
    from common.errors import UserError
    from datasets import collate
    from datasets.build import file_dataset
    from models import load_checkpoint
    from models.checkpoint import model_from_checkpoint
    from models.conv_lstm import LSTM_EVAL_OUTPUTS, ConvLSTM
    from models.inference_cost import cost_text, first_frame_size, summary_path, view_cost
    from models.math_probe import probe_math
    from models.precision import DTYPES, set_layout
    from models.safe_load import TRUST_HELP
    from preprocessing import Preprocessing, add_view_arguments, normalization, views_from
    from runs.math_choice import choose_math
    from streams.live import add_live_args, check_sources
    from streams.timeline import add_timeline_args
    from visuals.annotate import add_annotate_args, annotate_files

    parser = OneLineParser(description='Predict the actions in video files with a checkpoint')
    parser.add_argument('videos', nargs='*', help='video files (a pipe, - or a URL with --timeline)')
    parser.add_argument('--resume_path', type=Path, required=True, help='checkpoint to use')
    parser.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    parser.add_argument('--output', type=Path, default=None,
                        help="write the results JSON (main.py --inference's format) to this file")
    parser.add_argument('--output_topk', type=int, default=5, help='labels per video; <= 0: all')
    parser.add_argument('--inference_stride', type=NATURAL, default=0,
                        help='window stride in frames of the video; 0: one clip span (sample_duration x sample_t_stride)')
    parser.add_argument('--batch_size', type=POSITIVE, default=16, help='clips per forward pass')
    add_view_arguments(parser, recorded=True)
    parser.add_argument('--annotation_path', type=Path, default=None,
                        help='class names from this annotation file, for checkpoints that carry none')
    parser.add_argument('--features', type=Path, default=None, help='save features to OUT.hdf5 or a folder')
    parser.add_argument('--no_cuda', action='store_true')
    parser.add_argument('--precision', default='auto', choices=['auto', *DTYPES],
                        help='auto: on the CPU the fastest of fp32, bf16 and bf16 + channels_last_3d in a short '
                             'probe on the model; on a GPU bf16 where supported, else fp32 (default: %(default)s)')
    parser.add_argument('--channels_last', action='store_true', help='channels_last_3d memory format (no probe)')
    parser.add_argument('--lstm_eval', choices=LSTM_EVAL_OUTPUTS, default=None,
                        help="--model lstm checkpoints: predict with the last time step's logits or their mean "
                             '(default: what the checkpoint records)')
    add_live_args(parser)
    parser.add_argument('--inference_no_average', action='store_true',
                        help='--output lists every window with its own top-k instead of the video mean')
    add_timeline_args(parser)
    add_annotate_args(parser)
    args = parser.parse_args(argv)
    check_sources(args, parser)  # files, or one --live source; a URL kept as written
    try:
        ckpt = load_checkpoint(args.resume_path, trust=args.trust_checkpoint)
        # no weight depends on --lstm_eval: it overrides the recorded value, as main.py's does on a resumed run
        overrides = {} if args.lstm_eval is None else {'lstm_eval': args.lstm_eval}
        model = model_from_checkpoint(ckpt, str(args.resume_path), **overrides)
        if overrides and not isinstance(model, ConvLSTM):
            raise UserError(f'{args.resume_path}: --lstm_eval applies to --model lstm checkpoints only')
        prep = views_from(Preprocessing.from_checkpoint(ckpt, str(args.resume_path)), args)
        names = ckpt.get('class_names')
        if not names and args.annotation_path:
            from datasets.annotations import file_labels
            from datasets.formats.annotation_json import read_annotation_json
            names = file_labels(args.annotation_path, read_annotation_json(args.annotation_path))
        if prep.input_type != 'rgb':  # flow is read from hdf5 files made by generate_flow_hdf5, not decoded here
            raise UserError(f'{args.resume_path}: a --input_type {prep.input_type} model: run main.py --inference on '
                            'its hdf5 files (video files give RGB frames only)')
        n_out = head_of(model).out_features
        if not names or len(names) != n_out:
            raise UserError(f'{args.resume_path}: no class names for its {n_out} outputs: pass --annotation_path')
    except (UserError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    device = torch.device('cuda' if torch.cuda.is_available() and not args.no_cuda else 'cpu')
    model.to(device)
    shape = (3, prep.sample_duration, prep.sample_size, prep.sample_size)
    math = choose_math(args.precision, args.channels_last, device, file=sys.stderr,
                       probe=lambda: probe_math(model, shape, min(args.batch_size, 4), device, False,
                                                torch.get_num_threads())).inference
    set_layout(model, math.channels_last)
    multilabel = bool(ckpt.get('multilabel'))  # trained with --multilabel: independent per-label scores
    if args.live:
        from streams.live import run_live
        return run_live(args, model, prep, names, device, math, multilabel)
    keys = unique_keys(args.videos)
    if args.timeline is not None:  # streamed, window by window: the windows are the clips of --output
        from streams.timeline import run_timelines
        scores, n_failed = run_timelines(args, keys, model, prep, names, device, math, multilabel)
        try:
            if args.output is not None and scores:
                write_results(args, scores, names)
        except UserError as e:  # a full disk
            print(f'error: {e}', file=sys.stderr)
            return 2
        return 1 if n_failed else 0
    data, failed = file_dataset(args.videos, keys, prep, args.inference_stride or None, multilabel)
    for path, error in failed:
        print(f'{path}: error: {error}', file=sys.stderr)
    loader = torch.utils.data.DataLoader(data, batch_size=1, collate_fn=collate)
    features: ClipFeatures = {}
    with StopSignals() as stop:
        try:
            scores, faults = infer(loader, model, device, normalization(prep), amp_dtype=math.dtype,
                                   channels_last=math.channels_last, show_progress=sys.stderr.isatty(),
                                   multilabel=multilabel, features=features if args.features else None,
                                   max_clips=args.batch_size, should_stop=stop)
        except Interrupted as e:
            print(f"{e.died or f'signal {stop.signum}'}: stopped; nothing was written", file=sys.stderr)
            return 3 if e.died else 128 + int(stop.signum or signal.SIGINT)
    for path in args.videos:
        if keys[path] in scores:
            ranked = _ranked(video_scores({keys[path]: scores[keys[path]]})[keys[path]], names, args.output_topk)
            print(f'{path}: ' + ', '.join(f"{r['label']} {r['score']:.3f}" for r in ranked))
        elif all(p != path for p, _ in failed):
            print(f'{path}: error: no decodable clip', file=sys.stderr)
            failed.append((path, 'no clip'))
    try:
        if args.output is not None:
            write_results(args, scores, names)
            cost = view_cost(model, prep, args.inference_stride or None, [len(c) for c in scores.values()],
                             first_frame_size(data) if prep.inference_crop == 'nocrop' and scores else None)
            print(f'{cost_text(cost)} -> {atomic_write_json(summary_path(args.output), cost)}')
        if args.features and features:
            save_features(args.features, features)
            print(f'features of {len(features)} videos saved to {args.features}')
        if args.annotate or args.cam:
            failed += annotate_files([p for p in args.videos if keys[p] in scores], keys, args, model, prep, names,
                                     device, multilabel)
    except UserError as e:  # a full disk, a key that would leave the features folder
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 1 if failed or faults['failed_videos'] else 0


if __name__ == '__main__':
    sys.exit(predict())
