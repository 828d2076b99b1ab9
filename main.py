"""Train, fine-tune, resume, validate and infer: ``python main.py ...`` with the original's flags.

``run`` reads top to bottom: set-up -> checkpoint to resume -> model -> run state (optimizer,
schedule, restored progress) -> data -> the epoch loop (train, validate, schedule, log,
save) -> inference. One CPU, one GPU, ``torchrun --nproc_per_node N main.py --distributed
...`` (or the original's ``python main.py --distributed --world_size 1``), many machines.
"""
import random
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
import torch
import torch.nn as nn

import datasets
from common.errors import UserError
from datasets.device_decode import data_loader
from datasets.multigrid import Batching, Grid, calibration_items, calibration_videos, multigrid_schedule
from distributed.agreement import on_rank_zero
from distributed.collectives import any_rank, broadcast_buffers, ddp_without_forward_sync, max_over_ranks, reduce_sums
from distributed.launch import launch
from inference import infer_subset
from models import arch_name, generate_model, load_pretrained
from models.cubic_puzzle import N_PUZZLE_CLASSES, CubicPuzzleNet
from models.finetune import freeze_before
from models.precision import set_layout
from models.torchvision_weights import load_imagenet_backbone
from opts import model_options, parse_opts, run_record
from preprocessing import Preprocessing, normalization, resumed_preprocessing
from runs import run_lock
from runs.history import append_history, write_options
from runs.math_choice import run_math
from runs.position import PeriodicSave, continue_epoch, sampler_record
from runs.run_logs import RunLogs
from runs.run_state import RunState, recorded_model_options, recorded_threads, resume_checkpoint
from runs.stopping import DEAD_WORKER_HINT, StopSignals, death_anywhere, signal_safe_worker_init
from training import SUMS, NonFiniteLossError, cpu_threads, criterion_for, recalibrate_batchnorm, train_epoch, warmup
from validation import gather_videos, multilabel_metrics, val_epoch, video_metrics
from visuals.curves import write_curves


@dataclass
class Process:
    """Where this process runs: its rank among ``world`` (``local_world`` per node) and its device."""
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device
    show_progress: bool

    @property
    def master(self) -> bool:
        """The rank that writes checkpoints, logs and results."""
        return self.rank == 0


@dataclass
class Data:
    """The run's loaders (None where the options turn a phase off) and how they batch."""
    train: Optional[Iterable]  # a DataLoader, or one wrapped in device_decode.DeviceDecoding
    sampler: Optional[datasets.EpochSampler]
    val: Optional[Iterable]
    per_rank_batch: int  # clips
    loader_args: Dict[str, Any]
    batching: Optional[Batching] = None  # how the training epochs are batched (--multigrid, --repeat_aug)
    calibration: Optional[Iterable] = None  # full-shape training clips for BatchNorm statistics (--multigrid)


def run(opt, rank: int = 0, world: int = 1, local_rank: int = 0, local_world: int = 1) -> int:
    """Everything a ``main.py`` invocation does, on one process (``local_world`` processes per node)."""
    proc = setup(opt, rank, world, local_rank, local_world)
    command = ['main.py', *opt.command_line]  # what was asked, also when main.main(argv) is called in-process
    with run_lock.hold(opt.result_path, command, take=proc.master, any_failed=lambda f: any_rank(f, proc.device)):
        if proc.master:
            append_history(opt.result_path, command)
        ckpt = resume_checkpoint(opt, rank=proc.rank)
        model, options, ft_begin_module = build_model(opt, ckpt, proc)
        prep = resumed_preprocessing(opt, ckpt, say=proc.master)
        math = run_math(opt, model, prep, ckpt, proc.device, proc.rank, proc.local_world)
        model = place_model(model, opt, proc.device, math.train.channels_last)
        frozen = freeze_before(model, ft_begin_module)
        state = RunState.for_options(opt, model, options, prep.to_dict(), ft_begin_module, proc.device, math)
        if ckpt is not None:
            state.restore(ckpt, str(opt.resume_path), training=not opt.no_train,
                          milestones=opt.multistep_milestones if opt.overwrite_milestones else None,
                          rank=proc.rank, world=proc.world)
        report_model(model, options, ft_begin_module, bool(frozen), proc)
        if proc.master:  # opts.json: how the checkpoints were trained; opts_eval.json: a run that trains nothing
            write_options(opt.result_path, run_record(opt, state.options, state.preprocessing,
                                                      ft_begin_module=state.ft_begin_module), not opt.no_train)
        train_model = training_view(model, opt, proc)
        data = make_data(opt, proc, state)
        with StopSignals(proc.device) as stop, cpu_threads(
                proc.device, opt.cpu_threads, local_world, deterministic=opt.deterministic, say=proc.master,
                recorded=recorded_threads(ckpt, proc.rank, proc.world), source=str(opt.resume_path)) as state.threads:
            data.train = state.threads.watch(data.train) if state.threads else data.train  # measures its workers
            code = epoch_loop(opt, proc, state, train_model, frozen, data, stop)
            if code is None and opt.inference:
                broadcast_buffers(state.model)  # every rank infers with rank 0's BatchNorm statistics, the saved ones
                ended = infer_subset(opt, proc, state, data.loader_args, stop)
                code = None if ended is None else stopped(stop, proc, 'inference', ended)
        if code is None and proc.master:
            print(f'done: epoch {state.begin_epoch - 1}; checkpoints, logs and results in {opt.result_path}')
        return code or 0


# ----------------------------------------------------------------------------- the named parts of run

def setup(opt, rank: int, world: int, local_rank: int, local_world: int) -> Process:
    """Device, determinism and seeds; the result path, created."""
    cuda = torch.cuda.is_available() and not opt.no_cuda
    device = torch.device(f'cuda:{local_rank}' if cuda else 'cpu')
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not opt.deterministic
    if opt.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    random.seed(opt.manual_seed)
    np.random.seed(opt.manual_seed)
    torch.manual_seed(opt.manual_seed)
    if opt.batchnorm_sync and not cuda:
        raise UserError('--batchnorm_sync needs GPUs: PyTorch\'s SyncBatchNorm does not run on the CPU')
    if opt.result_path is None:
        raise UserError('--result_path is required')
    try:
        opt.result_path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'{opt.result_path}: cannot create or write the result path ({e.strerror})')
    datasets.require_inputs(opt)  # a mistyped path is one line before the model is built, not after
    return Process(rank, world, local_rank, local_world, device, rank == 0 and not opt.no_progress)


def build_model(opt, ckpt: Optional[Dict[str, Any]], proc: Process) -> tuple:
    """(model, its options, ``--ft_begin_module``): as the checkpoint records, pretrained, or fresh."""
    options = model_options(opt)
    ft_begin_module = opt.ft_begin_module
    if opt.pretext:  # the backbone's head is dropped; the puzzle head has its own classes
        options['n_classes'] = N_PUZZLE_CLASSES
    if ckpt is not None:
        recorded = recorded_model_options(ckpt)
        if recorded is not None and recorded.get('model') == 'lstm':  # no weight depends on it: the flag's,
            recorded['lstm_eval'] = opt.lstm_eval                      # as --inference's view flags are
        if recorded is not None:  # ours: the model is what it says
            differ = [f'--{k} {recorded[k]}' for k in recorded if k in options and options[k] != recorded[k]
                      and not (k == 'n_classes' and opt.pretrain_path is not None)]
            if differ and proc.master:
                print(f"note: {opt.resume_path} records {' '.join(differ)}; the checkpoint's model options "
                      'are used, not the flags')
            options = recorded
            ft_begin_module = ft_begin_module or ckpt.get('ft_begin_module', '')
        elif opt.pretrain_path is not None:  # the original's resume of a fine-tune
            options['n_classes'] = opt.n_finetune_classes
        model = generate_model(**options)
    elif opt.pretrain_path is not None:
        base = {k: v for k, v in options.items() if k != 'n_classes'}
        model = load_pretrained(opt.pretrain_path, opt.n_finetune_classes, opt.n_pretrain_classes,
                                trust=opt.trust_checkpoint, **base)
        options = dict(base, n_classes=opt.n_finetune_classes)
        if proc.master:
            print(f'fine-tuning from {opt.pretrain_path}: new {opt.n_finetune_classes}-class head')
    else:
        model = generate_model(**options)
        if opt.backbone_weights is not None:  # ImageNet weights of a 2D network (lstm, two-stream)
            load_imagenet_backbone(model, opt.backbone_weights, trust=opt.trust_checkpoint)
            if proc.master:
                print(f'2D network initialised from {opt.backbone_weights}')
    return (CubicPuzzleNet(model) if opt.pretext else model), options, ft_begin_module


def place_model(model: nn.Module, opt, device: torch.device, channels_last: bool) -> nn.Module:
    """The model on its device, in the channels_last_3d layout where asked, with synchronised BatchNorm where asked."""
    set_layout(model.to(device), channels_last)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if opt.batchnorm_sync else model


def training_view(model: nn.Module, opt, proc: Process) -> nn.Module:
    """What the training step calls: the model, wrapped for DDP and compiled where asked (same weights)."""
    if proc.world > 1:
        model = ddp_without_forward_sync(model, proc.local_rank if proc.device.type == 'cuda' else None)
    return torch.compile(model) if opt.compile else model


def report_model(model: nn.Module, options: Dict[str, Any], ft_begin_module: str, frozen: bool,
                 proc: Process) -> None:
    """One line: the architecture and its parameter counts."""
    if proc.master:
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{arch_name(options['model'], options['model_depth'])}: {sum(p.numel() for p in model.parameters()):,} "
              f'parameters, {n_train:,} trained' + (f' (from {ft_begin_module})' if frozen else ''))


def make_data(opt, proc: Process, state: RunState) -> Data:
    """Training and validation loaders; the class names they carry go into the run state."""
    # As in the original: --batch_size and --n_threads are per node, split over its processes.
    per_rank_batch = max(1, opt.batch_size // proc.local_world)
    workers = -(-opt.n_threads // proc.local_world)
    loader_args = dict(num_workers=workers, pin_memory=proc.device.type == 'cuda',
                       collate_fn=datasets.collate_puzzles if opt.pretext else datasets.collate,
                       persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                       worker_init_fn=signal_safe_worker_init())  # a scheduler's SIGTERM is the main process's
    data = Data(None, None, None, per_rank_batch, loader_args, Batching(per_rank_batch, opt.repeat_aug))
    on_device = opt.decode_device == 'cuda'  # workers only read; batches decoded on the GPU (datasets.device_decode)
    names = None
    if not opt.no_train:
        train_data = datasets.get_pretext_data(opt, 'training') if opt.pretext else datasets.get_training_data(opt)
        datasets.require_videos('training', train_data, proc.master)
        names = train_data.class_names
        data.sampler = datasets.epoch_sampler(train_data, opt.manual_seed, proc.rank, proc.world, data.batching.videos,
                                              workers, opt.shard_buffer)  # never a one-clip batch: BatchNorm
        if opt.multigrid:  # full-shape clips for BatchNorm; the schedule, checked against the model, printed
            videos = calibration_videos(opt.multigrid_bn_batches, per_rank_batch, opt.repeat_aug)
            items = calibration_items(len(train_data), opt.manual_seed, videos, proc.rank, proc.world,
                                      contiguous=opt.file_type == 'shards')
            data.batching.stages = multigrid_schedule(opt, data.sampler.per_rank, per_rank_batch, state.options,
                                                      say=proc.master, bn_clips=len(items) * opt.repeat_aug)
            data.calibration = data_loader(train_data, proc.device, on_device, batch_size=data.batching.videos,
                                           sampler=items, **dict(loader_args, persistent_workers=False)) if items else None
        data.train = data_loader(train_data, proc.device, on_device, batch_sampler=datasets.EpochBatches(data.sampler),
                                 generator=torch.Generator().manual_seed(opt.manual_seed + proc.rank), **loader_args)
    if not opt.no_val:
        val_data = datasets.get_pretext_data(opt, 'validation') if opt.pretext else datasets.get_validation_data(opt)
        datasets.require_videos('validation', val_data, proc.master)
        names = names or val_data.class_names
        val_batch = max(1, per_rank_batch // (1 if opt.pretext else opt.n_val_samples))
        shard = datasets.rank_share(val_data, proc.rank, proc.world, val_batch, workers)  # no padding duplicates
        data.val = data_loader(shard, proc.device, on_device, batch_size=val_batch, **loader_args)
    state.class_names = names or state.class_names
    datasets.check_class_count(state.class_names, state.options['n_classes'])
    return data


def epoch_loop(opt, proc: Process, state: RunState, train_model: nn.Module, frozen: List[nn.Module],
               data: Data, stop: StopSignals) -> Optional[int]:
    """Train, validate, schedule, log, save: epoch by epoch. None when done; an exit code when stopped."""
    normalize, inference = normalization(Preprocessing(**state.preprocessing)), state.math.inference
    criterion = criterion_for(opt.multilabel, opt.label_smoothing)
    begin = state.begin_epoch
    epochs = range(begin, opt.n_epochs + 1) if data.train is not None else \
        ([begin - 1 if opt.resume_path else 0] if data.val is not None else [])
    since = (epochs[0] if epochs else begin, int(state.position['batch']) if state.position else 0)
    with RunLogs(opt.result_path, train=data.train is not None, val=data.val is not None, multilabel=opt.multilabel,
                 since=since, tensorboard=opt.tensorboard, enabled=proc.master) as logs:
        for epoch in epochs:
            metrics: Dict[str, Any] = {}
            if data.train is not None:
                set_layout(state.model, state.math.train.channels_last)
                t = train_one_epoch(opt, proc, state, train_model, frozen, data, stop, epoch, logs,
                                    normalize, criterion)
                if t['interrupted']:
                    return preempted(opt, proc, state, data, epoch, t, stop)
                metrics['train'] = t
            if data.calibration is not None and data.batching.cycle(epoch) != [Grid(data.per_rank_batch)]:
                recalibrate_batchnorm(state.model, data.calibration, proc.device, normalize, frozen=frozen,
                                      amp_dtype=state.math.train.dtype, channels_last=state.math.train.channels_last)
            if data.val is not None:
                broadcast_buffers(state.model)  # every rank validates rank 0's model, the one saved
                set_layout(state.model, inference.channels_last)
                v = val_epoch(epoch, data.val, state.model, criterion, proc.device, normalize,
                              amp_dtype=inference.dtype, channels_last=inference.channels_last,
                              show_progress=proc.show_progress, should_stop=stop,
                              steps=int(max_over_ranks(len(data.val), proc.device)))  # every rank asks as often
                if stop(v['interrupted']):
                    died = death_anywhere(v['worker_died'], proc.device)
                    return stopped(stop, proc, 'validation', dict(v, worker_died=died)) if data.train is None else \
                        preempted(opt, proc, state, data, epoch, dict(t, worker_died=died), stop)
                v.update(reduce_sums({k: v[k] for k in SUMS}, proc.device))
                videos = gather_videos(v.pop('videos'))  # a video's clips may lie on several ranks
                v.update(multilabel_metrics(videos) if opt.multilabel else video_metrics(videos))
                v['loss'], v['acc'] = v['loss_sum'] / max(v['clips'], 1), v['correct'] / max(v['clips'], 1)
                metrics['val'] = v
            if data.train is not None:  # nothing non-finite goes further (nor into a checkpoint)
                state.check_finite(epoch, metrics['val']['loss'] if 'val' in metrics else None, opt.result_path,
                                   proc.device)
                state.scheduler.step(*([metrics['val']['loss']] if opt.lr_scheduler == 'plateau' else []))
            state.begin_epoch = epoch + 1
            if data.train is not None:
                state.gather_rng()
            on_rank_zero(lambda: end_of_epoch(opt, state, logs, epoch, metrics, data.train is not None), proc.rank)
            if data.train is not None and epoch < opt.n_epochs and stop():
                if proc.master:
                    print(f'{stop.text()}: stopped after epoch {epoch}; resume with --resume_path auto.',
                          flush=True)
                return 0
    return None


def end_of_epoch(opt, state: RunState, logs: RunLogs, epoch: int, metrics: Dict[str, Any], trained: bool) -> None:
    """Rank 0's part of an epoch's end: the log rows, curves.png and the epoch's checkpoints."""
    logs.epoch(epoch, metrics)
    write_curves(opt.result_path)  # curves.png, from the logs just written
    if trained:
        state.save_epoch(opt.result_path, epoch, metrics, opt.checkpoint, 'mAP' if opt.multilabel else 'video_top1',
                         opt.keep_checkpoints)


def train_one_epoch(opt, proc: Process, state: RunState, train_model: nn.Module, frozen: List[nn.Module],
                    data: Data, stop: StopSignals, epoch: int, logs: RunLogs, normalize: Callable,
                    criterion: nn.Module) -> Dict[str, Any]:
    """One training epoch (or the rest of a preempted one), its sums reduced over the ranks."""
    data.sampler.set_epoch(epoch, data.batching.batches(epoch))
    per_epoch = data.sampler.n_batches()
    start_batch, carried = resume_in_epoch(opt, proc, state, data, epoch, per_epoch)
    warm = None
    if opt.warmup_epochs > 0:  # over the iterations of the first epochs' length
        base_lrs = list(getattr(state.scheduler, 'base_lrs', [opt.learning_rate] * len(state.optimizer.param_groups)))
        first = data.batching.batches_in(1, data.sampler.n, data.sampler.world)
        warm = warmup(state.optimizer, base_lrs, max(1, round(opt.warmup_epochs * first)))
    factors = [g.lr_factor for g in data.batching.cycle(epoch)]
    clock = PeriodicSave(opt.checkpoint_every_minutes, proc.master)

    def save_now(done: int, sums: Dict[str, float]) -> None:  # every rank, at the agreed settled batch
        save_position(opt, proc, state, data, epoch, start_batch, done, sums)
        clock.restart()
    try:
        t = train_epoch(epoch, data.train, train_model, criterion, state.optimizer, proc.device, normalize,
                        frozen=frozen, scaler=state.scaler, amp_dtype=state.math.train.dtype,
                        channels_last=state.math.train.channels_last,
                        accumulate_steps=opt.accumulate_steps, batch_log=logs.batch,
                        iter_offset=data.batching.iterations_before(epoch, data.sampler.n, data.sampler.world),
                        before_step=warm, stop_requested=stop.local,
                        lr_factor=None if factors == [1.0] else lambda i: factors[(i - 1) % len(factors)],
                        checkpoint_due=clock.due, on_checkpoint=save_now, start_batch=start_batch,
                        carried=carried, show_progress=proc.show_progress)
    except NonFiniteLossError as e:
        raise UserError(f'{e}: stopping; the last good checkpoint is kept in {opt.result_path} '
                        '(lower --learning_rate, or try --precision fp32)')
    t['start_batch'] = start_batch
    t['rank_sums'] = {k: t[k] for k in SUMS}  # this rank's: reduced over the ranks where a position is saved
    if not t['interrupted']:
        t.update(reduce_sums({k: t[k] for k in SUMS}, proc.device))
        t['loss'], t['acc'] = t['loss_sum'] / max(t['clips'], 1), t['correct'] / max(t['clips'], 1)
    return t


def resume_in_epoch(opt, proc: Process, state: RunState, data: Data, epoch: int, per_epoch: int) -> tuple:
    """(batches already done, the sums to carry on rank 0) of a preempted ``epoch``; the sampler set to the rest."""
    if state.position is None or int(state.position['epoch']) != epoch:
        return 0, None
    batch, say = continue_epoch(state.position, data.sampler, world=proc.world, per_rank_batch=data.per_rank_batch,
                                seed=opt.manual_seed, source=str(opt.resume_path), per_epoch=per_epoch)
    if proc.master:
        print(say, flush=True)
    return batch, state.position['sums'] if proc.master else None  # the sums of all ranks, carried once


def save_position(opt, proc: Process, state: RunState, data: Data, epoch: int, start_batch: int,
                  batches_done: int, rank_sums: Dict[str, float]) -> Optional[str]:
    """Every rank: the epoch's sums over all ranks and where it stands, saved by rank 0 (its path there)."""
    sums = reduce_sums(rank_sums, proc.device)
    state.gather_rng()
    record = sampler_record(data.sampler, opt.manual_seed, epoch, proc.world, data.per_rank_batch,
                            batches_done - start_batch)
    saved = on_rank_zero(lambda: state.save_position(opt.result_path, epoch, batches_done, sums, record), proc.rank)
    return None if saved is None else str(saved)


def preempted(opt, proc: Process, state: RunState, data: Data, epoch: int, t: Dict[str, Any],
              stop: StopSignals) -> int:
    """Save where the epoch stands (the batches done and their sums); exit code 0 (a signal) or 3 (a dead worker)."""
    died = t.get('worker_died')
    saved = save_position(opt, proc, state, data, epoch, t['start_batch'], t['batches_done'], t['rank_sums'])
    if died and not proc.master and 'another rank' not in died:  # the rank that saw it says what died
        print(f'rank {proc.rank}: {died}', file=sys.stderr, flush=True)
    if proc.master:
        print(f"{died or stop.text()}: stopped after batch {t['batches_done']} of epoch {epoch}; "
              f'saved {saved}. Resume with --resume_path auto' + (DEAD_WORKER_HINT if died else '.'),
              file=sys.stderr if died else sys.stdout, flush=True)
    return 3 if died else 0


def stopped(stop: StopSignals, proc: Process, phase: str, result: Optional[Dict[str, Any]] = None) -> int:
    """A signal (or a dead worker: code 3) ended a run that trains nothing: nothing was written; 128 + signal."""
    died = (result or {}).get('worker_died')
    signum = int(max_over_ranks(float(stop.signum or 0), proc.device)) or 2  # the same code on every rank
    if proc.master:
        print(f"{died or f'signal {signum}'}: {phase} stopped; no results were written", file=sys.stderr,
              flush=True)
    return 3 if died else 128 + signum


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the options and run on this process, under torchrun, or spawned per GPU."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opt = parse_opts(argv)
    try:
        if opt.demo:
            from demo import run_demo
            return run_demo([a for a in argv if a != '--demo'], train=main)
        return launch(opt, run)
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
