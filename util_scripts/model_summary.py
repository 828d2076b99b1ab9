"""Parameters and multiply-accumulates per clip of any model and flags.

    python -m util_scripts.model_summary --model resnet --model_depth 50 --n_classes 700
    python -m util_scripts.model_summary --model resnet2p1d --sample_duration 32 --sample_size 160
    python -m util_scripts.model_summary --model two_stream --model_depth 22   # 5-channel RGB + flow clips

GMACs are counted by ``torch.utils.flop_counter`` (convolutions and linear layers; BN,
ReLU and pooling excluded) for one clip of C x T x H x W, on the ``meta`` device so that
even the largest models are summarised instantly and without memory.
"""
import sys
from typing import List, Optional

from common import cli
from models import arch_name
from models.factory import TWO_STREAM_MODELS
from models.summary import summarize
from opts import add_model_arguments, model_options
from preprocessing import INPUT_CHANNELS


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('model_summary', __doc__)
    add_model_arguments(parser)
    parser.add_argument('--sample_size', default=112, type=int, help='Crop side (default: %(default)s)')
    parser.add_argument('--sample_duration', default=16, type=int,
                        help='Frames per clip (default: %(default)s)')
    parser.set_defaults(n_input_channels=None)  # not given: the channels of the clips the model takes
    args = parser.parse_args(argv)
    if args.n_input_channels is None:
        args.n_input_channels = INPUT_CHANNELS['rgb_flow' if args.model in TWO_STREAM_MODELS else 'rgb']
    options = model_options(args)
    try:
        s = summarize(options, args.sample_size, args.sample_duration)
    except ValueError as e:
        return cli.fail(e)
    except RuntimeError as e:  # a clip too small for the network's downsampling
        clip = f'{args.n_input_channels}x{args.sample_duration}x{args.sample_size}x{args.sample_size}'
        reason = str(e).strip().splitlines()[0]
        return cli.fail(f"a {clip} clip is too small for "
                        f"{arch_name(options['model'], options['model_depth'])}: {reason}")
    print(f"{s['arch']}: {s['params']:,} parameters, {s['gmacs']:.2f} GMACs per clip "
          f"(input {'x'.join(map(str, s['input_shape'][1:]))}, output {list(s['output_shape'])}, "
          f"{s['state_dict_entries']} state_dict entries)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
