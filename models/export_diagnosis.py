"""Why an export failed, in one line naming the module (and the operator) responsible.

``torch.export`` runs the model's Python code on fake tensors, so a tracing failure's
traceback passes through the ``forward`` of every module on the way down: the deepest one
that belongs to the model is the culprit. A failure to translate the traced graph into ONNX
names the graph node (``Error when translating node %cummax ... target=...``); the node's
``nn_module_stack`` metadata, recorded by ``torch.export``, names the module that called it.
"""
import re
from types import TracebackType
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch.nn as nn

NODE_PATTERN = re.compile(r'translating node %(\w+)')
TARGET_PATTERN = re.compile(r'target=(?:torch\.ops\.)?([\w.]+)')


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from or while handling, outermost first."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def first_line(error: BaseException, limit: int = 200) -> str:
    """The exception's first non-empty line (its type if it has no text), shortened to ``limit``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    text = re.sub(r'\x1b\[[0-9;]*m', '', text)  # the exporter colours its messages
    return text if len(text) <= limit else text[:limit - 3] + '...'


def innermost(error: BaseException) -> BaseException:
    """The original exception at the bottom of ``error``'s chain."""
    return list(exception_chain(error))[-1]


def described(model: nn.Module, path: str) -> str:
    """``module 'layer1.0.conv1' (Conv3d)``; the root is named by its class alone."""
    try:
        module = model.get_submodule(path) if path else model
    except AttributeError:
        return f'module {path!r}'
    return f'module {path!r} ({type(module).__name__})' if path else f'the model ({type(module).__name__})'


def _frames(tb: Optional[TracebackType]) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def traced_module(model: nn.Module, error: BaseException) -> Optional[str]:
    """The qualified name of the deepest module of ``model`` whose code was running when ``error`` arose."""
    names: Dict[int, str] = {id(m): n for n, m in model.named_modules()}
    found: List[str] = []
    for link in exception_chain(error):
        for tb in _frames(link.__traceback__):
            owner = tb.tb_frame.f_locals.get('self')
            if id(owner) in names:
                found.append(names[id(owner)])
    return max(found, key=lambda n: len(n.split('.')) if n else 0) if found else None


def _stack_path(node: object) -> Optional[str]:
    stack = getattr(node, 'meta', {}).get('nn_module_stack') or {}
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return re.sub(r"^L\['self'\]\.?", '', path).replace('[', '.').replace(']', '')


def failed_node(error: BaseException) -> Tuple[Optional[str], Optional[str]]:
    """(node name, operator) of the graph node the ONNX translation stopped at, from its message."""
    for link in exception_chain(error):
        text = str(link)
        node = NODE_PATTERN.search(text)
        if node:
            target = TARGET_PATTERN.search(text[node.end():])
            return node.group(1), target.group(1) if target else None
    return None, None


def node_module(programs: Iterable[object], name: Optional[str], target: Optional[str]) -> Optional[str]:
    """The module that called the node in the first of ``programs`` that has it (by name, else by operator)."""
    for program in programs:
        nodes = list(program.graph.nodes)  # type: ignore[attr-defined]
        for node in [n for n in nodes if n.name == name] + [n for n in nodes if str(n.target) == target]:
            path = _stack_path(node)
            if path is not None:
                return path
    return None
