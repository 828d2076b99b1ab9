"""Export a model to ONNX (``.onnx``) or a ``torch.export`` archive (``.pt2``), checked against PyTorch.

Both formats take N x C x T x H x W float clips, normalised as the metadata's
``preprocessing`` says, with a dynamic batch dimension N, and return N x ``n_classes``
logits. ``torch.export`` traces the model once (batch ``trace_batch``); the ONNX exporter
(``torch.onnx.export(..., dynamo=True)``, through onnxscript) translates that program. The
file is written to a temp name, loaded back (ONNX Runtime on the CPU for ``.onnx``,
``torch.export.load`` for ``.pt2``), run on a random clip of another batch size
(``check_batch``: the batch really is dynamic) and compared with the PyTorch model; only a
file whose logits agree is renamed onto the target.

Metadata (``export_metadata``): a dict of JSON values. In ``.onnx`` files each key is one
``metadata_props`` entry whose value is the JSON text; in ``.pt2`` archives the dict is the
extra file ``metadata.json``. ``read_metadata`` reads either back.
"""
import io
import json
import logging
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from common.atomic import atomic_path
from common.errors import UserError
from models.checkpoint import FRAMEWORK_VERSION, model_from_checkpoint
from models.export_diagnosis import described, failed_node, first_line, innermost, node_module, traced_module
from preprocessing import INPUT_CHANNELS, Preprocessing

FORMATS = {'.onnx': 'ONNX', '.pt2': 'torch.export'}
INPUT_NAME, OUTPUT_NAME = 'clip', 'logits'
BATCH = 'batch'
METADATA_FILE = 'metadata.json'  # the extra file of a .pt2 archive
CHECKERS = {'.onnx': 'ONNX Runtime (CPU)', '.pt2': 'torch.export.load'}


class ExportError(UserError):
    """A model that cannot be exported, or whose export does not compute what the model does."""


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` wrote and how closely the file reproduces the PyTorch model."""
    path: Path
    max_abs_diff: float
    max_abs_logit: float
    trace_batch: int
    check_batch: int
    checked_with: str


def export_metadata(ckpt: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The metadata of a checkpoint's model: classes, preprocessing contract, model, input and output."""
    model = ckpt.get('model_options') or {}
    prep = Preprocessing.from_checkpoint(ckpt, source).to_dict()
    channels = model.get('n_input_channels', INPUT_CHANNELS[prep['input_type']])
    multilabel = bool(ckpt.get('multilabel'))
    return {
        'arch': ckpt.get('arch'),
        'model_options': dict(model),
        'class_names': list(ckpt['class_names']) if ckpt.get('class_names') is not None else None,
        'preprocessing': prep,
        'input': {'name': INPUT_NAME, 'dtype': 'float32',
                  'shape': [BATCH, channels, prep['sample_duration'], prep['sample_size'], prep['sample_size']],
                  'normalisation': '(uint8 pixels / 255 * value_scale - mean) / std, per channel'},
        'output': {'name': OUTPUT_NAME, 'shape': [BATCH, len(ckpt['class_names']) if ckpt.get('class_names')
                                                   else model.get('n_classes')],
                   'scores': 'sigmoid' if multilabel else 'softmax'},
        'multilabel': multilabel,
        'epoch': ckpt.get('epoch'),
        'source': str(source),
        'framework_version': FRAMEWORK_VERSION,
    }


def checkpoint_model(ckpt: Mapping[str, Any], source: str) -> Tuple[nn.Module, Dict[str, Any]]:
    """(the model in eval mode on the CPU, its metadata) of a checkpoint read with ``load_checkpoint``."""
    return model_from_checkpoint(ckpt, source).float(), export_metadata(ckpt, source)


def clip_shape(metadata: Mapping[str, Any]) -> Tuple[int, ...]:
    """C x T x H x W of one clip, as the metadata's ``input`` says."""
    return tuple(int(d) for d in metadata['input']['shape'][1:])


def random_clip(shape: Sequence[int], batch: int, seed: int) -> torch.Tensor:
    """A batch of normally distributed clips (the range of normalised input), reproducible by ``seed``."""
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed))


@contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporters' logs, prints (a failed trace prints its partial graph) and warnings off the terminal."""
    loggers = [logging.getLogger('torch')] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                                              if n.startswith(('torch.', 'onnxscript'))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def trace(model: nn.Module, clip: torch.Tensor, name: str) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` with a dynamic batch; a failure names the module that caused it."""
    batch = torch.export.Dim(BATCH, min=1)
    try:
        with quiet():
            return torch.export.export(model, (clip,), dynamic_shapes=({0: batch},))
    except Exception as e:  # torch.export raises many types
        culprit = traced_module(model, e)
        where = f' {described(model, culprit)}' if culprit is not None else ''
        raise ExportError(f'cannot export {name}: torch.export cannot trace{where or " it"}: '
                          f'{first_line(innermost(e))}') from e


def to_onnx(model: nn.Module, program: torch.export.ExportedProgram, clip: torch.Tensor, name: str) -> Any:
    """The ``torch.onnx.ONNXProgram`` of a traced program; a failure names the operator and its module."""
    batch = torch.export.Dim(BATCH, min=1)
    try:
        with quiet():
            return torch.onnx.export(program, (clip,), dynamo=True, input_names=[INPUT_NAME],
                                     output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
    except Exception as e:
        node, target = failed_node(e)
        path = node_module(_programs(program), node, target) if node else None
        op = f' {target}' if target else ''
        where = f' in {described(model, path)}' if path is not None else ''
        raise ExportError(f'cannot export {name} to ONNX: the exporter cannot translate{op or " the model"}'
                          f'{where}: {first_line(innermost(e))}') from e


def _programs(program: torch.export.ExportedProgram) -> Iterator[Any]:
    """The traced program, then its decomposed form (where the exporter's failing node may come from)."""
    yield program
    with quiet():
        yield program.run_decompositions()


def _name_batch_dimension(onnx_program: Any) -> None:
    """Call the dynamic first dimension of the graph's input and output ``batch`` (the exporter numbers it)."""
    from onnxscript import ir
    for value in [*onnx_program.model.graph.inputs, *onnx_program.model.graph.outputs]:
        if value.shape is not None and len(value.shape) and not isinstance(value.shape[0], int):
            value.shape = ir.Shape([ir.SymbolicDim(BATCH), *value.shape[1:]])


def save_onnx(onnx_program: Any, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write the ONNX model with ``metadata`` as ``metadata_props`` (JSON text per key), one file."""
    _name_batch_dimension(onnx_program)
    onnx_program.model.metadata_props.update({k: json.dumps(v) for k, v in metadata.items()})
    onnx_program.save(str(path), external_data=False)


def run_onnx(path: Path, clip: torch.Tensor) -> torch.Tensor:
    """The logits ONNX Runtime computes on the CPU for ``clip``."""
    import onnxruntime as ort
    try:
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: clip.numpy()})[0])
    except Exception as e:  # onnxruntime's own exception types
        raise ExportError(f'ONNX Runtime cannot run the exported model: {first_line(e)}') from e


def run_pt2(path: Path, clip: torch.Tensor) -> torch.Tensor:
    """The logits of the ``torch.export`` archive at ``path``, loaded back, for ``clip``."""
    with quiet(), torch.no_grad():
        return torch.export.load(str(path)).module()(clip)


def read_metadata(path: Path) -> Dict[str, Any]:
    """The metadata an exported file holds, as ``export_metadata`` made it."""
    path = Path(path)
    if path.suffix == '.onnx':
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        return {p.key: json.loads(p.value) for p in model.metadata_props}
    extra = {METADATA_FILE: ''}
    with quiet():
        torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[METADATA_FILE])


def check_format(path: Path) -> str:
    """The suffix of ``path`` if it is one that can be written, else an ``ExportError``."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"{path}: the output must end in .onnx (ONNX) or .pt2 (torch.export), not {suffix or 'nothing'!r}")
    return suffix


def export_model(model: nn.Module, path: Path, metadata: Mapping[str, Any], *, trace_batch: int = 2,
                 check_batch: int = 3, tolerance: float = 1e-3) -> ExportResult:
    """Export ``model`` to ``path`` (.onnx or .pt2), check it on a clip of ``check_batch``, write atomically.

    The check fails (``ExportError``, nothing written) when the largest absolute difference
    of the logits exceeds ``tolerance`` times the largest logit magnitude (at least 1).
    """
    suffix = check_format(path)
    if trace_batch == check_batch:
        raise ExportError('the check batch must differ from the trace batch, to test the dynamic batch')
    model = model.eval()
    name = metadata.get('arch') or type(model).__name__
    shape = clip_shape(metadata)
    program = trace(model, random_clip(shape, trace_batch, 0), name)
    clip = random_clip(shape, check_batch, 1)
    with torch.no_grad():
        expected = model(clip)
    with atomic_path(path) as tmp:
        if suffix == '.onnx':
            save_onnx(to_onnx(model, program, random_clip(shape, trace_batch, 0), name), tmp, metadata)
            got = run_onnx(tmp, clip)
        else:
            with quiet():
                torch.export.save(program, str(tmp), extra_files={METADATA_FILE: json.dumps(metadata)})
            got = run_pt2(tmp, clip)
        if got.shape != expected.shape:
            raise ExportError(f'the exported model returns {list(got.shape)} for a batch of {check_batch}, '
                              f'PyTorch {list(expected.shape)}: not written')
        diff, scale = float((got - expected).abs().max()), float(expected.abs().max())
        bound = tolerance * max(1.0, scale)
        if not diff <= bound:
            raise ExportError(f'the exported model differs from PyTorch by up to {diff:.3g} on a random clip '
                              f'(more than {bound:.3g}): not written')
    return ExportResult(Path(path), diff, scale, trace_batch, check_batch, CHECKERS[suffix])


def write_predictor(onnx_path: Path, metadata: Mapping[str, Any]) -> Tuple[Path, Path]:
    """Beside ``MODEL.onnx``: ``MODEL.preprocessing.json`` and ``MODEL_predict.py`` (``models/onnx_predictor.py``),
    written atomically; their paths."""
    from common.atomic import atomic_write_bytes, atomic_write_json
    prep_path = atomic_write_json(onnx_path.with_suffix('.preprocessing.json'),
                                  {k: metadata[k] for k in ('preprocessing', 'class_names', 'multilabel', 'arch')})
    script = onnx_path.with_name(onnx_path.stem + '_predict.py')
    atomic_write_bytes(script, (Path(__file__).parent / 'onnx_predictor.py').read_bytes())
    return prep_path, script
