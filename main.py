"""Train, fine-tune, resume, validate and infer: ``python main.py ...`` with the original's flags.

Read top to bottom: options -> processes -> model (fresh, pretrained or resumed) -> freezing
-> optimizer and schedule -> data -> the epoch loop (train, validate, schedule, log, save)
-> inference. One CPU, one GPU, ``torchrun --nproc_per_node N main.py --distributed ...``
(or the original's ``python main.py --distributed --world_size 1``), many machines.
"""
import os
import random
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

import datasets
from inference import infer, results_json, write_json
from models import (CheckpointError, MODEL_OPTION_NAMES, arch_name, generate_model, load_checkpoint,
                    load_pretrained, load_state_dict_checked, save_checkpoint)
from models.cubic_puzzle import N_PUZZLE_CLASSES, CubicPuzzleNet
from opts import model_options, parse_opts
from training import MultiLabelLoss, NonFiniteLossError, train_epoch
from validation import multilabel_metrics, val_epoch, video_metrics

TRAIN_COLUMNS = ['epoch', 'loss', 'acc', 'lr', 'clips_per_s', 'data_wait', 'bad_frames', 'failed_videos']
BATCH_COLUMNS = ['epoch', 'batch', 'iter', 'loss', 'acc', 'lr']
VAL_COLUMNS = ['epoch', 'loss', 'acc', 'video_top1', 'video_top5', 'mean_class_acc', 'bad_frames',
               'failed_videos']
MULTILABEL_VAL_COLUMNS = ['epoch', 'loss', 'acc', 'mAP', 'recall_at_1', 'recall_at_5', 'bad_frames',
                          'failed_videos']


class UserError(Exception):
    """A mistake in the options or files: reported in one line, exit code 2."""


# ----------------------------------------------------------------------------- small parts

class TsvLog:
    """A tab-separated log with a header, appended to on resume, flushed every row."""

    def __init__(self, path: Path, columns: List[str], append: bool):
        fresh = not (append and path.exists() and path.stat().st_size > 0)
        self.file = open(path, 'w' if fresh else 'a', encoding='utf-8')
        if fresh:
            self.file.write('\t'.join(columns) + '\n')
        self.file.flush()

    def __call__(self, values: List[Any]) -> None:
        self.file.write('\t'.join(f'{v:.6g}' if isinstance(v, float) else str(v) for v in values) + '\n')
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def find_latest_checkpoint(result_path: Path) -> Optional[Path]:
    """``save_latest.pth``, else the highest ``save_<epoch>.pth`` in ``result_path``."""
    if (result_path / 'save_latest.pth').is_file():
        return result_path / 'save_latest.pth'
    numbered = [(int(p.stem.split('_')[1]), p) for p in result_path.glob('save_*.pth')
                if p.stem.split('_')[1].isdigit()]
    return max(numbered)[1] if numbered else None


def fine_tune_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Top-level modules in definition order (DenseNet: the parts of ``features``, then the head)."""
    if hasattr(model, 'features') and hasattr(model, 'classifier'):
        return list(model.features.named_children()) + [('classifier', model.classifier)]
    return list(model.named_children())


def freeze_before(model: nn.Module, ft_begin_module: str) -> List[nn.Module]:
    """Freeze every module before ``ft_begin_module``: no gradients, and (via training.py) no BN updates."""
    if not ft_begin_module:
        return []
    modules = fine_tune_modules(model)
    names = [n for n, m in modules if any(True for _ in m.parameters())]
    if ft_begin_module not in names:
        raise UserError(f"--ft_begin_module {ft_begin_module!r} is not a module of this model: "
                        f"choose one of {', '.join(names)}")
    frozen = []
    for name, module in modules:
        if name == ft_begin_module:
            break
        module.requires_grad_(False)
        frozen.append(module)
    return frozen


def warmup(optimizer: torch.optim.Optimizer, base_lrs: List[float], steps: int):
    """A ``before_step`` hook: learning rate base * (iteration / steps) for the first ``steps`` iterations."""
    def set_lr(iteration: int) -> None:
        if iteration <= steps:
            for group, base in zip(optimizer.param_groups, base_lrs):
                group['lr'] = base * iteration / steps
    return set_lr


def rng_state() -> Dict[str, Any]:
    """Python, numpy, torch and CUDA random states, for an exact resume."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array as a tensor, so that checkpoints stay loadable with weights_only
    state = {'python': random.getstate(), 'numpy': (name, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``--precision`` on ``device`` (None: fp32)."""
    if precision == 'auto':
        ok = device.type == 'cuda' and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]


def reduce_sums(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """Sum the given numbers over all ranks (identity without distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def gather_dict(d: Dict[str, Any]) -> Dict[str, Any]:
    """Merge per-rank dicts (each rank holds different videos) on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return d
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, d)
    merged: Dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


# ----------------------------------------------------------------------------- the run

def run(opt, rank: int = 0, world: int = 1, local_rank: int = 0, local_world: int = 1) -> int:
    """Everything a ``main.py`` invocation does, on one process (``local_world`` processes per node)."""
    master = rank == 0
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
    show = master and not opt.no_progress

    if opt.batchnorm_sync and not cuda:
        raise UserError('--batchnorm_sync needs GPUs: PyTorch\'s SyncBatchNorm does not run on the CPU')
    if opt.result_path is None:
        raise UserError('--result_path is required')
    try:
        opt.result_path.mkdir(parents=True, exist_ok=True)
        probe = opt.result_path / f'.write_test_{os.getpid()}'
        probe.write_text('')
        probe.unlink()
    except OSError as e:
        raise UserError(f'{opt.result_path}: cannot create or write the result path ({e.strerror})')
    if master:  # temp files of saves that a kill interrupted (the previous files are intact)
        for stale in opt.result_path.glob('.*.tmp'):
            stale.unlink(missing_ok=True)

    # --- model: resumed, pretrained or fresh
    resume = None
    if opt.resume_path is not None and str(opt.resume_path.name) in ('auto', 'latest'):
        found = find_latest_checkpoint(opt.result_path)
        if found is None and opt.resume_path.name == 'latest':
            raise UserError(f'--resume_path latest: no checkpoint in {opt.result_path}')
        if master:
            print(f'resuming from {found}' if found else f'no checkpoint in {opt.result_path} yet: starting fresh')
        opt.resume_path = found
    options = model_options(opt)
    ft_begin_module = opt.ft_begin_module
    if opt.pretext:  # the backbone's head is dropped; the puzzle head has its own classes
        options['n_classes'] = N_PUZZLE_CLASSES
    if opt.resume_path is not None:
        resume = load_checkpoint(opt.resume_path)
        if (resume.get('pretext') or '') != opt.pretext:
            raise UserError(f"{opt.resume_path}: a {resume.get('pretext') or 'classification'} checkpoint; "
                            + (f"resume it with --pretext {resume['pretext']}, or fine-tune it with --pretrain_path"
                               if resume.get('pretext') else 'resume it without --pretext'))
        if 'multilabel' in resume and bool(resume['multilabel']) != opt.multilabel:
            raise UserError(f"{opt.resume_path}: trained {'with' if resume['multilabel'] else 'without'} "
                            f"--multilabel; resume it {'with' if resume['multilabel'] else 'without'} the flag")
        if isinstance(resume.get('model_options'), dict):  # ours: the model is what it says
            recorded = {k: v for k, v in resume['model_options'].items() if k in MODEL_OPTION_NAMES}
            differ = [f'--{k} {recorded[k]}' for k in recorded if k in options and options[k] != recorded[k]
                      and not (k == 'n_classes' and opt.pretrain_path is not None)]
            if differ and master:
                print(f"note: {opt.resume_path} records {' '.join(differ)}; the checkpoint's model options "
                      'are used, not the flags')
            options = recorded
            ft_begin_module = ft_begin_module or resume.get('ft_begin_module', '')
        elif opt.pretrain_path is not None:  # the original's resume of a fine-tune
            options['n_classes'] = opt.n_finetune_classes
        model = generate_model(**options)
        if opt.pretext:
            model = CubicPuzzleNet(model)
            load_state_dict_checked(model.backbone, resume['state_dict'], source=str(opt.resume_path))
            load_state_dict_checked(model.classifier, resume['pretext_head'], source=str(opt.resume_path))
        else:
            load_state_dict_checked(model, resume['state_dict'], source=str(opt.resume_path), options=options)
    elif opt.pretrain_path is not None:
        base = {k: v for k, v in options.items() if k != 'n_classes'}
        model = load_pretrained(opt.pretrain_path, opt.n_finetune_classes, opt.n_pretrain_classes, **base)
        options = dict(base, n_classes=opt.n_finetune_classes)
        if master:
            print(f'fine-tuning from {opt.pretrain_path}: new {opt.n_finetune_classes}-class head')
    else:
        model = generate_model(**options)
        if opt.pretext:
            model = CubicPuzzleNet(model)
    frozen = freeze_before(model, ft_begin_module)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if master:
        n_train = sum(p.numel() for p in trainable)
        print(f"{arch_name(options['model'], options['model_depth'])}: {sum(p.numel() for p in model.parameters()):,} "
              f'parameters, {n_train:,} trained' + (f' (from {ft_begin_module})' if frozen else ''))

    if master:
        record = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list)
                      and v and isinstance(v[0], Path) else v) for k, v in vars(opt).items()}
        write_json(opt.result_path / 'opts.json', record)

    model.to(device)
    if opt.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    if opt.batchnorm_sync:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    if opt.compile:
        train_model = torch.compile(train_model)

    # --- optimizer, schedule, mixed precision
    dtype = amp_dtype(opt.precision, device)
    if opt.optimizer == 'adamw':
        optimizer = torch.optim.AdamW(trainable, lr=opt.learning_rate, weight_decay=opt.weight_decay)
    else:
        optimizer = torch.optim.SGD(trainable, lr=opt.learning_rate, momentum=opt.momentum,
                                    dampening=0.0 if opt.nesterov else opt.dampening,
                                    weight_decay=opt.weight_decay, nesterov=opt.nesterov)
    if opt.lr_scheduler == 'multistep':
        scheduler: Any = torch.optim.lr_scheduler.MultiStepLR(optimizer, opt.multistep_milestones)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'min', patience=opt.plateau_patience)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    begin_epoch, best = 1, -1.0
    position = None  # where a preempted epoch stopped
    if resume is not None and 'epoch' in resume:
        begin_epoch = int(resume['epoch']) + 1
        if isinstance(resume.get('resume_position'), dict) and not opt.no_train:
            position = resume['resume_position']
            begin_epoch = int(position['epoch'])
        if not opt.no_train:
            try:
                if resume.get('optimizer'):
                    optimizer.load_state_dict(resume['optimizer'])
                if resume.get('scheduler'):
                    scheduler.load_state_dict(resume['scheduler'])
            except (ValueError, KeyError) as e:
                raise UserError(f'{opt.resume_path}: its optimizer state does not fit this run ({e}); '
                                'were different modules trained (--ft_begin_module)?')
            if opt.overwrite_milestones and hasattr(scheduler, 'milestones'):
                from collections import Counter
                scheduler.milestones = Counter(opt.multistep_milestones)
            if scaler is not None and resume.get('scaler'):
                scaler.load_state_dict(resume['scaler'])
        if resume.get('rng_state'):
            set_rng_state(resume['rng_state'])
        best = float(resume.get('best_video_top1', -1.0))  # with --multilabel: the best mAP (same key)

    # --- data
    normalize = datasets.get_normalization(opt)
    # As in the original: --batch_size and --n_threads are per node, split over its processes.
    per_rank_batch = max(1, opt.batch_size // local_world)
    workers = -(-opt.n_threads // local_world)
    loader_args = dict(num_workers=workers, pin_memory=cuda,
                       collate_fn=datasets.collate_puzzles if opt.pretext else datasets.collate,
                       persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
    class_names: Optional[List[str]] = resume.get('class_names') if resume else None
    train_loader = val_loader = train_sampler = None
    if not opt.no_train:
        train_data = datasets.get_pretext_data(opt, 'training') if opt.pretext else datasets.get_training_data(opt)
        report_data('training', train_data, master)
        class_names = train_data.class_names
        train_sampler = datasets.EpochSampler(len(train_data), seed=opt.manual_seed, rank=rank, world=world)
        train_loader = DataLoader(train_data, batch_size=per_rank_batch, sampler=train_sampler,
                                  generator=torch.Generator().manual_seed(opt.manual_seed + rank), **loader_args)
    if not opt.no_val:
        val_data = datasets.get_pretext_data(opt, 'validation') if opt.pretext else datasets.get_validation_data(opt)
        report_data('validation', val_data, master)
        class_names = class_names or val_data.class_names
        shard = Subset(val_data, list(range(rank, len(val_data), world)))  # no padding duplicates
        clips_per_video = 1 if opt.pretext else opt.n_val_samples
        val_loader = DataLoader(shard, batch_size=max(1, per_rank_batch // clips_per_video), **loader_args)
    check_classes(class_names, options['n_classes'])

    append = begin_epoch > 1
    logs = {}
    if master:
        if train_loader is not None:
            logs['train'] = TsvLog(opt.result_path / 'train.log', TRAIN_COLUMNS, append)
            logs['batch'] = TsvLog(opt.result_path / 'train_batch.log', BATCH_COLUMNS, append)
        if val_loader is not None:
            logs['val'] = TsvLog(opt.result_path / 'val.log', val_columns(opt), append)
    writer = None
    if master and opt.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=str(opt.result_path), purge_step=begin_epoch)

    def save(name: str, epoch: int, metrics: Dict[str, Any], resume_position: Optional[Dict] = None) -> None:
        # A pretext checkpoint holds the backbone as a plain model without its head (what
        # --pretrain_path loads), and the pretext head beside it for resuming.
        net = model.backbone if opt.pretext else model
        pretext = {'pretext': opt.pretext, 'pretext_head': model.classifier.state_dict()} if opt.pretext else {}
        save_checkpoint(opt.result_path / name, net, options, epoch=epoch, optimizer=optimizer,
                        scheduler=scheduler, class_names=class_names, mean=opt.mean, std=opt.std,
                        value_scale=opt.value_scale, sample_size=opt.sample_size,
                        sample_duration=opt.sample_duration,
                        extra={'scaler': scaler.state_dict() if scaler else None, 'rng_state': rng_state(),
                               'best_video_top1': best, 'ft_begin_module': ft_begin_module,
                               'multilabel': opt.multilabel,
                               'metrics': metrics, 'resume_position': resume_position, **pretext})

    # --- preemption: SIGTERM (Slurm, cloud) or SIGINT ends the current step, saves, exits 0
    stop: Dict[str, Any] = {'signal': None}

    def on_signal(signum: int, frame: Any) -> None:
        stop['signal'] = signum

    if threading_main():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def should_stop() -> bool:
        flag = stop['signal'] is not None
        if world > 1:  # every rank stops at the same step, even if only some got the signal
            t = torch.tensor([float(flag)], device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
        return flag

    # --- the epoch loop
    last_epoch = begin_epoch - 1
    epochs = range(begin_epoch, opt.n_epochs + 1) if train_loader is not None else \
        ([begin_epoch - 1 if resume else 0] if val_loader is not None else [])
    for epoch in epochs:
        metrics: Dict[str, Any] = {}
        if train_loader is not None:
            train_sampler.set_epoch(epoch)
            per_epoch = -(-train_sampler.per_rank // per_rank_batch)
            start_batch, carried = 0, None
            if position is not None and int(position['epoch']) == epoch:  # finish a preempted epoch
                start_batch, carried = int(position['batch']), position['sums']
                train_sampler.set_start(start_batch * per_rank_batch)
                if master:
                    print(f'epoch {epoch}: resuming after batch {start_batch} of {per_epoch}')
            iter_offset = (epoch - 1) * per_epoch
            warm = None
            if opt.warmup_epochs > 0:
                warm = warmup(optimizer, list(scheduler.base_lrs) if hasattr(scheduler, 'base_lrs')
                              else [opt.learning_rate] * len(optimizer.param_groups),
                              max(1, round(opt.warmup_epochs * per_epoch)))
            try:
                t = train_epoch(epoch, train_loader, train_model, criterion_for(opt), optimizer, device,
                                normalize, frozen=frozen, scaler=scaler, amp_dtype=dtype,
                                channels_last=opt.channels_last, accumulate_steps=opt.accumulate_steps,
                                batch_log=logs.get('batch'), iter_offset=iter_offset, before_step=warm,
                                should_stop=should_stop, start_batch=start_batch, carried=carried,
                                show_progress=show)
            except NonFiniteLossError as e:
                raise UserError(f'{e}: stopping; the last good checkpoint is kept in {opt.result_path} '
                                '(lower --learning_rate, or try --precision fp32)')
            if t['interrupted']:  # preempted: save where this epoch stands and leave
                sums = {k: t[k] for k in ('loss_sum', 'correct', 'clips', 'bad_frames', 'failed_videos')}
                if master:
                    save('save_latest.pth', epoch - 1, {},
                         resume_position={'epoch': epoch, 'batch': t['batches_done'], 'sums': sums,
                                          'sampler': {'seed': opt.manual_seed, 'epoch': epoch,
                                                      'samples_done': t['batches_done'] * per_rank_batch}})
                    print(f"signal {stop['signal']}: stopped after batch {t['batches_done']} of epoch {epoch}; "
                          f"saved {opt.result_path / 'save_latest.pth'}. Resume with --resume_path auto.",
                          flush=True)
                close_logs(logs, writer)
                return 0
            t.update(reduce_sums({k: t[k] for k in ('loss_sum', 'correct', 'clips', 'bad_frames',
                                                    'failed_videos')}, device))
            t['loss'], t['acc'] = t['loss_sum'] / max(t['clips'], 1), t['correct'] / max(t['clips'], 1)
            metrics['train'] = t
        if val_loader is not None:
            v = val_epoch(epoch, val_loader, model, criterion_for(opt), device, normalize, amp_dtype=dtype,
                          channels_last=opt.channels_last, show_progress=show)
            sums = reduce_sums({k: v[k] for k in ('loss_sum', 'correct', 'clips', 'bad_frames',
                                                  'failed_videos')}, device)
            v.update(sums)
            gathered = gather_dict(v.pop('videos'))
            v.update(multilabel_metrics(gathered) if opt.multilabel else video_metrics(gathered))
            v['loss'], v['acc'] = v['loss_sum'] / max(v['clips'], 1), v['correct'] / max(v['clips'], 1)
            metrics['val'] = v
        if train_loader is not None:
            if opt.lr_scheduler == 'plateau':
                scheduler.step(metrics['val']['loss'])
            else:
                scheduler.step()
        last_epoch = epoch
        if master:
            log_epoch(epoch, metrics, logs, writer, val_columns(opt))
            if train_loader is not None:
                key = 'mAP' if opt.multilabel else 'video_top1'
                improved = 'val' in metrics and metrics['val'][key] > best
                if improved:
                    best = metrics['val'][key]
                summary = {k: {m: x for m, x in d.items() if isinstance(x, (int, float))} for k, d in metrics.items()}
                if opt.checkpoint > 0 and epoch % opt.checkpoint == 0:
                    save(f'save_{epoch}.pth', epoch, summary)
                save('save_latest.pth', epoch, summary)
                if improved:
                    save('save_best.pth', epoch, summary)
        if train_loader is not None and epoch < opt.n_epochs and should_stop():
            if master:
                print(f"signal {stop['signal']}: stopped after epoch {epoch}; resume with --resume_path auto.",
                      flush=True)
            close_logs(logs, writer)
            return 0

    close_logs(logs, writer)

    # --- inference
    if opt.inference:
        infer_data = datasets.get_inference_data(opt)
        report_data(f'inference ({opt.inference_subset})', infer_data, master)
        names = class_names or infer_data.class_names
        check_classes(names, options['n_classes'])
        shard = Subset(infer_data, list(range(rank, len(infer_data), world)))
        batch = opt.inference_batch_size or opt.batch_size
        loader = DataLoader(shard, batch_size=max(1, batch // local_world), **loader_args)
        scores, faults = infer(loader, model, device, normalize, amp_dtype=dtype,
                               channels_last=opt.channels_last, show_progress=show, multilabel=opt.multilabel)
        scores = gather_dict(scores)
        faults = reduce_sums(faults, device)
        if master:
            subset = {'train': 'training', 'val': 'validation', 'test': 'testing'}[opt.inference_subset]
            out = write_json(opt.result_path / f'{opt.inference_subset}.json',
                             results_json(scores, names, opt.output_topk, not opt.inference_no_average))
            line = f'inference: {len(scores)} videos -> {out}'
            truth = {r.video_id: infer_data.class_names[r.label] for r in infer_data.records if r.label >= 0}
            if opt.multilabel:
                if truth:
                    m = multilabel_inference_metrics(scores, infer_data.records)
                    line += (f" | {subset}: mAP {m['mAP']:.4f}, recall@1 {m['recall_at_1']:.4f}, "
                             f"recall@5 {m['recall_at_5']:.4f} over {m['videos']} videos")
            elif truth and not opt.inference_no_average:
                from util_scripts import eval_accuracy as ev
                results = ev.load_results(out)
                top1, top5 = (ev.evaluate(truth, results, k)[0] for k in (1, 5))
                per_class = ev.mean_class_accuracy(ev.per_class_accuracy(truth, results))
                ev.write_reports(out, truth, results, names)
                line += (f' | {subset}: video top-1 {top1:.4f}, top-5 {top5:.4f}, mean class {per_class:.4f}; '
                         f'per-class table, confusion matrix and chart beside it')
            print(line + fault_text(faults))
    if master:
        print(f'done: epoch {last_epoch}; checkpoints, logs and results in {opt.result_path}')
    return 0


def threading_main() -> bool:
    """Signal handlers can only be installed from the main thread."""
    import threading
    return threading.current_thread() is threading.main_thread()


def close_logs(logs: Dict[str, 'TsvLog'], writer: Any) -> None:
    """Close the TSV logs and the TensorBoard writer."""
    for log in logs.values():
        log.close()
    if writer is not None:
        writer.close()


def criterion_for(opt) -> nn.Module:
    """Cross-entropy, or BCE on sigmoids for ``--multilabel`` (both with ``--label_smoothing``)."""
    if opt.multilabel:
        return MultiLabelLoss(opt.label_smoothing)
    return nn.CrossEntropyLoss(label_smoothing=opt.label_smoothing)


def val_columns(opt) -> List[str]:
    """The val.log columns: the original's three, then video-level (or multi-label) metrics."""
    return MULTILABEL_VAL_COLUMNS if opt.multilabel else VAL_COLUMNS


def multilabel_inference_metrics(scores: Dict[str, Any], records: List[Any]) -> Dict[str, float]:
    """mAP and top-k recall of the averaged inference scores against the records' label lists."""
    truth = {r.video_id: r.label_set for r in records}
    videos = {vid: (torch.stack([p for _, p in clips]).sum(0), len(clips), truth.get(vid, ()))
              for vid, clips in scores.items()}
    return multilabel_metrics(videos)


def check_classes(names: Optional[List[str]], n_classes: int) -> None:
    """The annotation's label count must match the model's head."""
    if names is not None and len(names) != n_classes:
        raise UserError(f'the annotation file has {len(names)} classes but the model has {n_classes} '
                        f'outputs: pass --n_classes {len(names)} (with --n_pretrain_classes when fine-tuning)')


def report_data(name: str, data: Any, master: bool) -> None:
    """Say how many videos a subset has, and which are missing."""
    if len(data) == 0:
        raise UserError(f'the {name} subset has no usable video ({data.videos.summary()}): '
                        'check --video_path, --annotation_path and --file_type')
    if master:
        print(f'{name}: {data.videos.summary()}')


def fault_text(m: Dict[str, Any]) -> str:
    """'' or '; N bad frames replaced, M videos skipped'."""
    parts = []
    if m.get('bad_frames'):
        parts.append(f"{int(m['bad_frames'])} bad frames replaced")
    if m.get('failed_videos'):
        parts.append(f"{int(m['failed_videos'])} unreadable videos skipped")
    return ('; ' + ', '.join(parts)) if parts else ''


def log_epoch(epoch: int, metrics: Dict[str, Dict[str, Any]], logs: Dict[str, TsvLog], writer: Any,
              columns: List[str] = VAL_COLUMNS) -> None:
    """The epoch summary line, the TSV rows and the TensorBoard scalars (``columns``: val.log's)."""
    parts = [f'epoch {epoch}']
    if 'train' in metrics:
        t = metrics['train']
        parts.append(f"train loss {t['loss']:.4f} acc {t['acc']:.4f} lr {t['lr']:.3g} "
                     f"({t['clips_per_s']:.1f} clips/s, {t['data_wait']:.0%} waiting for data{fault_text(t)})")
        logs['train']([epoch] + [t[c] for c in TRAIN_COLUMNS[1:]])
        if writer is not None:
            for k in ('loss', 'acc', 'lr'):
                writer.add_scalar(f'train/{k}', t[k], epoch)
    if 'val' in metrics:
        v = metrics['val']
        if 'mAP' in v:
            parts.append(f"val loss {v['loss']:.4f} clip hit@1 {v['acc']:.4f}, video mAP {v['mAP']:.4f} "
                         f"recall@1 {v['recall_at_1']:.4f} recall@5 {v['recall_at_5']:.4f}{fault_text(v)}")
        else:
            parts.append(f"val loss {v['loss']:.4f} clip acc {v['acc']:.4f}, video top-1 {v['video_top1']:.4f} "
                         f"top-5 {v['video_top5']:.4f} mean class {v['mean_class_acc']:.4f}{fault_text(v)}")
        if 'val' in logs:
            logs['val']([epoch] + [v[c] for c in columns[1:]])
        if writer is not None:
            for k in columns[1:-2]:
                writer.add_scalar(f'val/{k}', v[k], epoch)
    print(' | '.join(parts), flush=True)


# ----------------------------------------------------------------------------- processes

def _spawned(local_rank: int, opt, node_rank: int, per_node: int, world: int) -> None:
    rank = node_rank * per_node + local_rank
    backend = 'nccl' if torch.cuda.is_available() and not opt.no_cuda else 'gloo'
    dist.init_process_group(backend, init_method=opt.dist_url, world_size=world, rank=rank,
                            timeout=timedelta(seconds=opt.dist_timeout))
    try:
        run(opt, rank, world, local_rank, per_node)
    finally:
        dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the options and run on this process, under torchrun, or spawned per GPU."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opt = parse_opts(argv)
    try:
        if opt.demo:
            from util_scripts.demo import run_demo
            return run_demo([a for a in argv if a != '--demo'])
        if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ and int(os.environ['WORLD_SIZE']) > 1:
            backend = 'nccl' if torch.cuda.is_available() and not opt.no_cuda else 'gloo'
            dist.init_process_group(backend, init_method='env://', timeout=timedelta(seconds=opt.dist_timeout))
            try:
                return run(opt, dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', 0)),
                           int(os.environ.get('LOCAL_WORLD_SIZE', dist.get_world_size())))
            finally:
                dist.destroy_process_group()
        if opt.distributed:  # the original's form: one process per GPU on each of --world_size nodes
            if opt.world_size < 1:
                raise UserError('--distributed without torchrun needs --world_size (the number of nodes), e.g. 1')
            per_node = torch.cuda.device_count() if torch.cuda.is_available() and not opt.no_cuda else 1
            node_rank = int(os.environ.get('NODE_RANK', os.environ.get('OMPI_COMM_WORLD_RANK', 0)))
            world = per_node * opt.world_size
            if world > 1:
                torch.multiprocessing.spawn(_spawned, args=(opt, node_rank, per_node, world), nprocs=per_node)
                return 0
        return run(opt)
    except (UserError, CheckpointError, datasets.AnnotationError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
