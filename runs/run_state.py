"""A training run's state: the one object that writes a run's checkpoints and restores them.

What a checkpoint written by ``RunState.save`` holds (the first five keys are the original's):

| key | what |
|---|---|
| ``epoch`` | the last completed epoch |
| ``arch`` | ``model-depth``, e.g. ``resnet-18`` |
| ``state_dict`` | the weights, without wrapper prefixes (``--pretext``: the backbone, no head) |
| ``optimizer``, ``scheduler`` | their ``state_dict()`` |
| ``model_options`` | the ``generate_model`` keywords the model was built with |
| ``class_names`` | the label of every output |
| ``preprocessing`` | the input contract (``preprocessing.Preprocessing``); ``mean``, ``std``, ``value_scale``, ``sample_size``, ``sample_duration`` repeat part of it for older readers |
| ``version`` | this framework's version |
| ``scaler`` | the fp16 GradScaler state, or None |
| ``rng_state`` | Python, numpy, torch (and CUDA) random states, for an exact resume |
| ``rank_rng_states`` | under distributed: every rank's ``rng_state``, each restored on its own rank (same world size) |
| ``best_video_top1`` | the best validation video top-1 so far (``--multilabel``: mAP) |
| ``ft_begin_module``, ``multilabel`` | how the run trains |
| ``metrics`` | the epoch's train/val summary |
| ``resume_position`` | where a preempted epoch stopped (epoch, batch, running sums, sampler), or None |
| ``math`` | the math the run resolved (``models.precision.MathPlan.record``: device type, training and inference math as names such as ``bf16+cl``), which a resume with ``--precision auto`` reuses |
| ``cpu_threads`` | a CPU run's torch threads once ``runs.thread_split`` settled them (None before), which a resume with ``--cpu_threads 0`` reuses |
| ``pretext``, ``pretext_head`` | ``--pretext`` runs only: the task and its head's weights |

No checkpoint holds a NaN or an infinity: ``save`` refuses a state with one (in the weights,
the BatchNorm statistics or the optimizer state) with a ``UserError`` naming it and the
last good checkpoint, and ``check_finite`` stops a run at the end of an epoch that left one.
"""
import io
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from common.errors import UserError
from distributed.collectives import broadcast_object, gather_objects
from models.checkpoint import load_checkpoint, load_state_dict_checked, save_checkpoint
from models.factory import MODEL_OPTION_NAMES
from models.precision import FP32, MathPlan
from runs.checkpoint_files import numbered, place, prune
from runs.lr_schedule import CosineLR


def rng_state() -> Dict[str, Any]:
    """Python, numpy, torch and CUDA random states, for an exact resume."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array as a tensor, so that checkpoints stay loadable with weights_only
    state = {'python': random.getstate(), 'numpy': (name, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def nonfinite_entries(tensors: Mapping[str, Any]) -> List[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity."""
    return [name for name, t in tensors.items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    random.setstate(state['python'])
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def check_resumable(ckpt: Mapping[str, Any], source: str, pretext: str, multilabel: bool) -> None:
    """A checkpoint resumes only a run of its own kind (pretext task, multi-label)."""
    if (ckpt.get('pretext') or '') != pretext:
        raise UserError(f"{source}: a {ckpt.get('pretext') or 'classification'} checkpoint; "
                        + (f"resume it with --pretext {ckpt['pretext']}, or fine-tune it with --pretrain_path"
                           if ckpt.get('pretext') else 'resume it without --pretext'))
    if 'multilabel' in ckpt and bool(ckpt['multilabel']) != multilabel:
        raise UserError(f"{source}: trained {'with' if ckpt['multilabel'] else 'without'} "
                        f"--multilabel; resume it {'with' if ckpt['multilabel'] else 'without'} the flag")


def recorded_model_options(ckpt: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The model options a checkpoint of ours records (None for the original's files)."""
    if not isinstance(ckpt.get('model_options'), Mapping):
        return None
    return {k: v for k, v in ckpt['model_options'].items() if k in MODEL_OPTION_NAMES}


def recorded_threads(ckpt: Optional[Mapping[str, Any]], rank: int = 0, world: int = 1) -> Optional[int]:
    """The torch threads a CPU run's rank settled on, as its checkpoint records them (None: not recorded or not
    sane): each rank's own where the same number of ranks saved them, else rank 0's."""
    if ckpt is None:
        return None
    ranks = ckpt.get('rank_rng_states')
    mine = ranks[rank] if isinstance(ranks, list) and len(ranks) == world else None
    value = mine.get('cpu_threads') if isinstance(mine, dict) else ckpt.get('cpu_threads')
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096 else None


def recorded_math(ckpt: Optional[Mapping[str, Any]]) -> Any:
    """What a checkpoint records of its run's math (``MathPlan.from_record`` reads it), or None."""
    return None if ckpt is None else ckpt.get('math')


def last_good(result_path: Path) -> str:
    """Where a stopped run's last good checkpoint is, in words."""
    found = latest_checkpoint(result_path)
    return f'the last good checkpoint is {found}' if found else f'no checkpoint was saved in {result_path} yet'


def non_finite_text(names: Sequence[str]) -> str:
    """'non-finite values in a, b, c (and 4 more)'."""
    if not names:
        return "non-finite values on another rank"
    more = f' (and {len(names) - 3} more)' if len(names) > 3 else ''
    return f"non-finite values in {', '.join(names[:3])}{more}"


class RunState:
    """The model, optimizer, schedule, scaler and progress of a run, and their checkpoint.

    ``save`` and ``restore`` are the only writer and reader of what a run's checkpoint holds
    (the table above); ``best``, ``begin_epoch`` and ``position`` are the progress.
    """

    def __init__(self, model: nn.Module, options: Mapping[str, Any], optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Optional[torch.amp.GradScaler], *, preprocessing: Mapping[str, Any],
                 class_names: Optional[Sequence[str]], ft_begin_module: str, multilabel: bool, pretext: str,
                 math: Optional[MathPlan] = None):
        self.model, self.options = model, dict(options)
        self.math = math or MathPlan(FP32, FP32, 'cpu')  # how the run computes (runs.math_choice)
        self.threads: Any = None  # a CPU run's runs.thread_split.ThreadSplit: its count, once settled, is saved
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.preprocessing = dict(preprocessing)
        self.class_names = list(class_names) if class_names is not None else None
        self.ft_begin_module, self.multilabel, self.pretext = ft_begin_module, multilabel, pretext
        self.best = -1.0
        self.begin_epoch = 1
        self.position: Optional[Dict[str, Any]] = None  # where a preempted epoch stopped
        self.rank_rng: Optional[List[Dict[str, Any]]] = None  # every rank's random states (gather_rng)

    @classmethod
    def for_options(cls, opt: Any, model: nn.Module, options: Mapping[str, Any], preprocessing: Mapping[str, Any],
                    ft_begin_module: str, device: torch.device, math: MathPlan) -> 'RunState':
        """A fresh state for ``model``: the options' optimizer over its trainable parameters, schedule and the
        scaler that fp16 training (``math``) needs."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        if opt.optimizer == 'adamw':
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(trainable, lr=opt.learning_rate,
                                                                 weight_decay=opt.weight_decay)
        else:
            optimizer = torch.optim.SGD(trainable, lr=opt.learning_rate, momentum=opt.momentum,
                                        dampening=0.0 if opt.nesterov else opt.dampening,
                                        weight_decay=opt.weight_decay, nesterov=opt.nesterov)
        if opt.lr_scheduler == 'multistep':
            scheduler: Any = torch.optim.lr_scheduler.MultiStepLR(optimizer, opt.multistep_milestones)
        elif opt.lr_scheduler == 'cosine':
            scheduler = CosineLR(optimizer, opt.n_epochs, opt.warmup_epochs)
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'min', patience=opt.plateau_patience)
        fp16 = math.train.dtype == torch.float16
        return cls(model, options, optimizer, scheduler, torch.amp.GradScaler(device.type) if fp16 else None,
                   preprocessing=preprocessing, class_names=None, ft_begin_module=ft_begin_module,
                   multilabel=opt.multilabel, pretext=opt.pretext, math=math)

    def nonfinite(self) -> List[str]:
        """The names of the weights, BatchNorm statistics and optimizer states holding a NaN or an infinity."""
        entries: Dict[str, Any] = dict(self.model.state_dict())
        for name, p in self.model.named_parameters():
            entries.update({f'{name} ({key})': v for key, v in self.optimizer.state.get(p, {}).items()})
        return nonfinite_entries(entries)

    def check_finite(self, epoch: int, val_loss: Optional[float], result_path: Path, device: torch.device) -> None:
        """UserError (on every rank alike) if ``epoch`` left non-finite values or validation loss."""
        from distributed.collectives import reduce_sums
        bad = self.nonfinite() + ([] if val_loss is None or math.isfinite(val_loss) else ['the validation loss'])
        if reduce_sums({'bad': float(len(bad))}, device)['bad']:
            raise UserError(f'epoch {epoch}: {non_finite_text(bad)}; stopped before saving it: '
                            f'{last_good(Path(result_path))} (lower --learning_rate, or try --precision fp32)')

    def save(self, path: Path, epoch: int, metrics: Optional[Mapping[str, Any]] = None,
             position: Optional[Mapping[str, Any]] = None) -> Path:
        """Atomically write the checkpoint of the state after ``epoch`` (``position``: mid-epoch).

        A state with a non-finite value is refused (UserError): no checkpoint holds one.
        """
        bad = self.nonfinite()
        if bad:
            raise UserError(f'{path}: not written: {non_finite_text(bad)}; {last_good(Path(path).parent)}')
        # A pretext checkpoint holds the backbone as a plain model without its head (what
        # --pretrain_path loads), and the pretext head beside it for resuming.
        net = self.model.backbone if self.pretext else self.model
        pretext = {'pretext': self.pretext, 'pretext_head': self.model.classifier.state_dict()} \
            if self.pretext else {}
        return save_checkpoint(path, net, self.options, epoch=epoch, optimizer=self.optimizer,
                               scheduler=self.scheduler, class_names=self.class_names,
                               preprocessing=self.preprocessing,
                               extra={'scaler': self.scaler.state_dict() if self.scaler else None,
                                      'rng_state': rng_state(), 'rank_rng_states': self.rank_rng,
                                      'best_video_top1': self.best,
                                      'ft_begin_module': self.ft_begin_module, 'multilabel': self.multilabel,
                                      'metrics': dict(metrics or {}),
                                      'resume_position': dict(position) if position else None,
                                      'math': self.math.record(), 'cpu_threads': getattr(self.threads, 'fixed', None),
                                      **pretext})

    def save_epoch(self, result_path: Path, epoch: int, metrics: Mapping[str, Mapping[str, Any]], every: int,
                   best_key: str, keep: int = 0) -> None:
        """``save_latest.pth``; ``save_<epoch>.pth`` every ``every`` epochs; ``save_best.pth`` on a new best.

        The checkpoint is written once; its other names are hard links to it (a copy where the
        file system has none). ``keep`` > 0 leaves only that many numbered saves.
        """
        improved = 'val' in metrics and metrics['val'][best_key] > self.best
        if improved:
            self.best = metrics['val'][best_key]
        summary = {k: {m: x for m, x in d.items() if isinstance(x, (int, float))} for k, d in metrics.items()}
        latest = self.save(result_path / 'save_latest.pth', epoch, summary)
        if every > 0 and epoch % every == 0:
            place(latest, result_path / f'save_{epoch}.pth')
            prune(result_path, keep, epoch)
        if improved:
            place(latest, result_path / 'save_best.pth')

    def save_position(self, result_path: Path, epoch: int, batches_done: int, sums: Mapping[str, float],
                      sampler: Mapping[str, Any]) -> Path:
        """``save_latest.pth`` of ``epoch`` stopped after ``batches_done`` batches per rank, to resume from.

        ``sums`` are the epoch's running sums over all ranks (restored once, on rank 0); ``sampler``
        says where the epoch's order stands: seed, world size, per-rank batch, training-set size and
        the positions done by all ranks together (``samples_done``), so that another topology can
        re-shard the rest.
        """
        return self.save(result_path / 'save_latest.pth', epoch - 1, {},
                         position={'epoch': epoch, 'batch': batches_done, 'sums': dict(sums),
                                   'sampler': dict(sampler)})

    def gather_rng(self) -> None:
        """Every rank's random states, for rank 0's next save (a collective under distributed; nothing otherwise)."""
        mine = io.BytesIO()
        # as bytes: the object collectives unpickle tensors weights-only and fail; each rank's settled threads too
        torch.save(dict(rng_state(), cpu_threads=getattr(self.threads, 'fixed', None)), mine)
        states = gather_objects(mine.getvalue())
        self.rank_rng = [torch.load(io.BytesIO(s), weights_only=True) for s in states] if len(states) > 1 else None

    def restore(self, ckpt: Mapping[str, Any], source: str, training: bool,
                milestones: Optional[List[int]] = None, rank: int = 0, world: int = 1) -> None:
        """Load the weights, and (when ``training``) the optimizer, schedule, scaler and position.

        ``milestones`` replace the restored schedule's (``--overwrite_milestones``).
        """
        if self.pretext:
            load_state_dict_checked(self.model.backbone, ckpt['state_dict'], source=source)
            load_state_dict_checked(self.model.classifier, ckpt['pretext_head'], source=source)
        else:
            load_state_dict_checked(self.model, ckpt['state_dict'], source=source, options=self.options)
        if 'epoch' not in ckpt:  # a bare state_dict: weights only
            return
        self.begin_epoch = int(ckpt['epoch']) + 1
        if training:
            if isinstance(ckpt.get('resume_position'), Mapping):
                self.position = dict(ckpt['resume_position'])
                self.begin_epoch = int(self.position['epoch'])
            try:
                if ckpt.get('optimizer'):
                    self.optimizer.load_state_dict(ckpt['optimizer'])
                if ckpt.get('scheduler'):
                    self.scheduler.load_state_dict(ckpt['scheduler'])
            except (ValueError, KeyError) as e:
                raise UserError(f'{source}: its optimizer state does not fit this run ({e}); '
                                'were different modules trained (--ft_begin_module)?')
            if milestones is not None and hasattr(self.scheduler, 'milestones'):
                self.scheduler.milestones = Counter(milestones)
            if self.scaler is not None and ckpt.get('scaler'):
                self.scaler.load_state_dict(ckpt['scaler'])
        ranks = ckpt.get('rank_rng_states')
        if isinstance(ranks, list) and len(ranks) == world:  # each rank its own generators (dropout masks)
            set_rng_state(ranks[rank])
        elif ckpt.get('rng_state'):
            set_rng_state(ckpt['rng_state'])
        self.best = float(ckpt.get('best_video_top1', -1.0))  # with --multilabel: the best mAP (same key)


def latest_checkpoint(result_path: Path) -> Optional[Path]:
    """``save_latest.pth``, else the highest ``save_<epoch>.pth`` in ``result_path``."""
    if (result_path / 'save_latest.pth').is_file():
        return result_path / 'save_latest.pth'
    saves = numbered(result_path)
    return saves[-1][1] if saves else None


def resume_checkpoint(opt: Any, rank: int = 0) -> Optional[Dict[str, Any]]:
    """The checkpoint ``--resume_path`` names (``auto``/``latest``: the newest in the result path), checked.

    Rank 0 finds the newest checkpoint and every rank resumes from what it found, even if a save
    lands in between or the ranks see the result path at different moments (a cluster file system).
    """
    say = rank == 0
    if opt.resume_path is not None and opt.resume_path.name in ('auto', 'latest'):
        found = broadcast_object(latest_checkpoint(opt.result_path) if rank == 0 else None)
        if found is None and opt.resume_path.name == 'latest':
            raise UserError(f'--resume_path latest: no checkpoint in {opt.result_path}')
        if say:
            print(f'resuming from {found}' if found else f'no checkpoint in {opt.result_path} yet: starting fresh')
        opt.resume_path = found
    if opt.resume_path is None:
        return None
    ckpt = load_checkpoint(opt.resume_path, trust=opt.trust_checkpoint)
    check_resumable(ckpt, str(opt.resume_path), opt.pretext, opt.multilabel)
    return ckpt
