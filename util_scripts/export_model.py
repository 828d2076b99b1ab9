"""Export a checkpoint's model to ONNX (OUT.onnx) or torch.export (OUT.pt2), checked against PyTorch.

    python -m util_scripts.export_model results/save_200.pth model.onnx
    python -m util_scripts.export_model results/save_200.pth model.pt2

The file takes N x C x T x H x W normalised clips (N dynamic) and returns N x n_classes
logits; it records the class names and the preprocessing contract as metadata (ONNX
``metadata_props``, JSON text per key; the ``metadata.json`` extra file of a .pt2 archive).
Before it is written, the exported model is run on a random clip of another batch size than
the one traced (ONNX Runtime on the CPU, or the loaded ExportedProgram) and compared with
PyTorch; the largest difference of the logits is printed. Failures are one line, exit code 2.
Beside an .onnx file go OUT.preprocessing.json and OUT_predict.py, a predictor for video files
that needs only numpy, PyAV and ONNX Runtime (``models/onnx_predictor.py``).
"""
import sys
from typing import List, Optional

from common import cli
from models.checkpoint import load_checkpoint
from models.export import check_format, checkpoint_model, export_model, write_predictor
from models.safe_load import TRUST_HELP


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('export_model', __doc__)
    cli.add_paths(parser, checkpoint='A checkpoint of this framework (save_<epoch>.pth)',
                  out='The file to write: .onnx (ONNX) or .pt2 (torch.export)')
    parser.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    parser.add_argument('--trace_batch', type=cli.POSITIVE, default=2,
                        help='Batch size of the example clip traced (default: %(default)s)')
    parser.add_argument('--check_batch', type=cli.POSITIVE, default=3,
                        help='Batch size of the check, different from --trace_batch (default: %(default)s)')
    parser.add_argument('--tolerance', type=cli.float_in(0, open_lo=True), default=1e-3,
                        help='Largest difference of the logits accepted, relative to the largest logit '
                             'magnitude (at least 1) (default: %(default)s)')
    args = parser.parse_args(argv)
    return cli.run(lambda: export(args))


def export(args) -> None:
    """Read the checkpoint, export its model, report the check."""
    check_format(args.out)
    model, metadata = checkpoint_model(load_checkpoint(args.checkpoint, trust=args.trust_checkpoint),
                                       str(args.checkpoint))
    result = export_model(model, args.out, metadata, trace_batch=args.trace_batch,
                          check_batch=args.check_batch, tolerance=args.tolerance)
    classes = metadata['class_names']
    print(f"exported {metadata['arch']} to {result.path} (batch dynamic, input "
          f"{'x'.join(map(str, metadata['input']['shape']))}, "
          f"{len(classes) if classes else 'no'} class names, preprocessing recorded); "
          f'checked with {result.checked_with} at batch {result.check_batch} (traced at {result.trace_batch}): '
          f'max |logits - PyTorch| = {result.max_abs_diff:.3g} (largest |logit| {result.max_abs_logit:.3g})')
    if result.path.suffix == '.onnx':
        prep_path, script = write_predictor(result.path, metadata)
        print(f'beside it: {prep_path.name} (its preprocessing) and {script.name} '
              f'(python {script.name} VIDEO: numpy, PyAV and ONNX Runtime only)')


if __name__ == '__main__':
    sys.exit(main())
