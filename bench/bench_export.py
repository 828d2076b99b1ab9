"""CPU latency per clip of an exported model: ONNX Runtime vs PyTorch eager, at 1 and 2 threads.

    python bench/bench_export.py --model resnet --model_depth 18 --runs 20

Exports the model (random weights, ``--n_classes`` outputs) with ``models.export`` to a temp
file, then times one clip of 3 x T x S x S (batch 1) ``--runs`` times after ``--warmup`` runs,
alternating the engines so that background load falls on both alike; prints the median and
the spread (min-max) in milliseconds per clip.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from preprocessing import Preprocessing  # noqa: E402
from models import generate_model  # noqa: E402
from models.export import export_metadata, export_model, random_clip  # noqa: E402
from opts import add_model_arguments, model_options  # noqa: E402


def onnx_runner(path: Path, threads: int) -> Callable[[torch.Tensor], object]:
    """One clip through ONNX Runtime on the CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    return lambda clip: session.run(None, {'clip': clip.numpy()})


def eager_runner(model: torch.nn.Module, threads: int) -> Callable[[torch.Tensor], object]:
    """One clip through the PyTorch model (inference mode) with ``threads`` intra-op threads."""
    def run(clip: torch.Tensor) -> object:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return model(clip)
    return run


def timed(runners: Dict[str, Callable], clip: torch.Tensor, runs: int, warmup: int) -> Dict[str, List[float]]:
    """Milliseconds per call of each runner, the runners interleaved run by run."""
    times: Dict[str, List[float]] = {name: [] for name in runners}
    for i in range(warmup + runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run(clip)
            if i >= warmup:
                times[name].append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    """Export, time, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument('--sample_size', type=int, default=112)
    parser.add_argument('--sample_duration', type=int, default=16)
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args()
    options = model_options(args)
    model = generate_model(**options).eval()
    prep = Preprocessing(sample_size=args.sample_size, sample_duration=args.sample_duration)
    ckpt = {'model_options': options, 'preprocessing': prep.to_dict(), 'arch': f"{args.model}-{args.model_depth}"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'model.onnx'
        start = time.perf_counter()
        result = export_model(model, path, export_metadata(ckpt, 'random weights'))
        print(f'exported in {time.perf_counter() - start:.1f} s; max |logits - PyTorch| = {result.max_abs_diff:.2g}')
        runners = {}
        for threads in (1, 2):
            runners[f'ONNX Runtime, {threads} thread(s)'] = onnx_runner(path, threads)
            runners[f'PyTorch eager, {threads} thread(s)'] = eager_runner(model, threads)
        clip = random_clip((args.n_input_channels, args.sample_duration, args.sample_size, args.sample_size), 1, 0)
        times = timed(runners, clip, args.runs, args.warmup)
    print('| engine | median ms / clip | min - max |\n|---|---|---|')
    for name, values in times.items():
        print(f'| {name} | {statistics.median(values):.0f} | {min(values):.0f} - {max(values):.0f} |')


if __name__ == '__main__':
    main()
