"""Train, fine-tune, resume, validate and infer: ``python main.py ...`` with the original's flags.

The training loop is not implemented yet. What works today is the model side: every
architecture (``models.generate_model``), checkpoint loading (``models.load_model``), and the
tools ``python -m util_scripts.model_summary``, ``convert_torchvision_weights`` and
``remove_dataparallel``. This entry point says so instead of pretending to train.
"""
import sys


def main() -> int:
    """Refuse to run, with a message saying what is available instead."""
    print('main.py: training, validation and inference are not implemented yet. Available now: '
          'models.generate_model / models.load_model and python -m util_scripts.model_summary '
          '(see README.md).', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
