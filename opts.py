"""Command-line options, named and defaulted as in the original 3D-ResNets-PyTorch.

``parse_opts(argv)`` returns the namespace ``main.py`` and the dataset builders read, with
the original's derived fields (``mean``, ``std``, ``n_input_channels``, ``arch``,
``begin_epoch``, ``n_finetune_classes``) and ``command_line`` (the arguments parsed).
``add_model_arguments`` is the model group shared with the tools in ``util_scripts/``;
``run_record`` is what ``opts.json`` holds.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from common.cli import NATURAL, POSITIVE, OneLineParser, float_in, int_in, or_auto
from common.errors import UserError
from common.processes import available_cpus
from datasets.formats.shard_index import option_problem, source_or_path
from models import MODEL_DEFAULTS, MODEL_DEPTHS, MODEL_OPTION_NAMES, arch_name
from models.conv_lstm import LSTM_EVAL_OUTPUTS
from models.factory import FRAME_NET_MODELS, TWO_STREAM_MODELS
from models.safe_load import TRUST_HELP

# Types of the numeric flags: each checks its range as the flag is parsed (``error: --flag must be ...``).
ANY_INT = int_in()  # POSITIVE and NATURAL: common.cli's
FRACTION = float_in(0, 1, open_lo=True)  # (0, 1]
NON_NEGATIVE = float_in(0)
SEED = int_in(0, 2 ** 32 - 1)  # what numpy.random.seed accepts


def _flagger(group: Any) -> Callable[..., None]:
    """``flag(name, default, help, **kwargs)``: one ``--name`` option whose help ends with its default."""
    def flag(name: str, default: Any, help: str, **kwargs: Any) -> None:
        group.add_argument(f'--{name}', default=default, help=f'{help} (default: %(default)s)', **kwargs)
    return flag


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags that define a model's architecture (``generate_model``'s keywords)."""
    g = parser.add_argument_group('model')
    model_flag = _flagger(g)

    def flag(name: str, help: str, **kwargs: Any) -> None:
        model_flag(name, MODEL_DEFAULTS[name], help, **kwargs)

    flag('model', 'Model family', choices=list(MODEL_DEPTHS))
    flag('model_depth', 'Depth: resnet/resnet2p1d/preresnet 10|18|34|50|101|152|200, '
         'wideresnet/resnext 50|101|152|200, densenet 121|169|201|264, two_stream/fused_two_stream '
         '22 (Inception-v1)|18|34|50 (ResNet streams), lstm 22 (GoogLeNet)|18|34|50 (ResNet) per frame; '
         'i3d and c3d have one depth and take any', type=POSITIVE)
    flag('n_classes', 'Number of output classes', type=POSITIVE)
    flag('n_input_channels', 'Input channels: 3 for RGB, 2 for optical flow, 5 for RGB + flow', type=POSITIVE)
    flag('conv1_t_size', 'Temporal kernel size of the stem conv', type=POSITIVE)
    flag('conv1_t_stride', 'Temporal stride of the stem conv', type=POSITIVE)
    g.add_argument('--no_max_pool', action='store_true', help='Remove the 3x3x3 stride-2 max pool after the stem')
    flag('resnet_shortcut', 'Shortcut: A = zero-padded identity, B = 1x1x1 conv + BN', choices=['A', 'B'])
    flag('resnet_widen_factor', 'Channel width multiplier of the ResNet trunks', type=float_in(0, open_lo=True))
    flag('wide_resnet_k', 'Width multiplier of wideresnet', type=POSITIVE)
    flag('resnext_cardinality', 'Groups of the ResNeXt 3x3x3 conv', type=POSITIVE)
    flag('r2p1d_mid_planes', 'resnet2p1d mid-plane widths: conv = per conv, as in the original; '
         'block = one per block, as in torchvision', choices=['conv', 'block'])
    flag('r2p1d_stem_mid_planes', 'resnet2p1d stem mid-plane width; 0 = parameter-matching formula '
         '(110 for conv1_t_size 7); torchvision uses 45', type=NATURAL)
    flag('temporal_padding', 'ResNet families: pad time with zeros (the original) or by repeating border '
         'frames (for weights inflated from 2D networks)', choices=['zeros', 'replicate'])
    flag('lstm_eval', 'lstm: the eval-mode prediction is the last time step\'s (the paper\'s test) or the mean '
         'over the steps; training always uses the cross-entropy of every step', choices=list(LSTM_EVAL_OUTPUTS))
    flag('flow_frames', 'two_stream/fused_two_stream: flow frames stacked per snapshot (the flow stream\'s '
         'first conv takes twice as many channels)', type=POSITIVE)
    return parser


def model_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The model-defining options of parsed arguments, ready for ``generate_model(**...)``."""
    return {name: getattr(args, name) for name in MODEL_OPTION_NAMES}


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Paths, dataset, clip sampling, augmentation and normalisation flags."""
    g = parser.add_argument_group('data')
    g.add_argument('--root_path', default=None, type=Path,
                   help='Prefix joined to the relative video, annotation, result, resume and pretrain paths')
    g.add_argument('--video_path', default=None, type=source_or_path, nargs='+',
                   help='Root of the frame folders, hdf5 or video files (one per annotation file, or one for all); '
                        'with --file_type shards a folder, http(s)://, s3://, gs:// prefix or pipe:COMMAND with {name}')
    g.add_argument('--annotation_path', default=None, type=Path, nargs='+',
                   help='Annotation JSON file(s); several merge into one label space')
    g.add_argument('--result_path', default=None, type=Path, help='Output directory')
    flag = _flagger(g)
    flag('dataset', 'kinetics', 'Only activitynet changes how annotations are read',
         choices=['kinetics', 'activitynet', 'ucf101', 'hmdb51', 'mit', 'folder'])
    flag('class_fraction', 1.0, 'Keep this seeded fraction of the classes', type=FRACTION)
    flag('instance_fraction', 1.0, 'Keep this seeded fraction of the training videos of each class', type=FRACTION)
    flag('file_type', 'jpg', 'jpg folders, hdf5 or video files, or tar shards of them (docs/cluster.md)',
         choices=['jpg', 'hdf5', 'video', 'shards'])
    flag('shard_buffer', 64, '--file_type shards: samples a DataLoader worker shuffles together (and holds)',
         type=POSITIVE)
    flag('input_type', 'rgb', 'flow reads video_u/video_v from hdf5 files; rgb_flow: RGB from the --video_path '
         'hdf5 files and flow from the same-named files under --flow_path, 5 channels',
         choices=['rgb', 'flow', 'rgb_flow'])
    g.add_argument('--flow_path', default=None, type=Path, nargs='+',
                   help='--input_type rgb_flow: root(s) of the flow hdf5 files, one per --video_path root')
    flag('sample_size', 112, 'Crop side', type=POSITIVE)
    flag('sample_duration', 16, 'Frames per clip', type=POSITIVE)
    flag('sample_t_stride', 1, 'Take every n-th frame', type=POSITIVE)
    flag('train_crop', 'random', 'random: RandomResizedCrop; corner: MultiScaleCornerCrop; center',
         choices=['random', 'corner', 'center'])
    flag('train_crop_min_scale', 0.25, 'Minimum area fraction of the random crop', type=FRACTION)
    flag('train_crop_min_ratio', 0.75, 'Aspect range [r, 1/r] of the random crop', type=FRACTION)
    g.add_argument('--no_hflip', action='store_true', help='No random horizontal flip')
    g.add_argument('--colorjitter', action='store_true',
                   help='Random brightness/contrast/saturation 0.4 and hue 0.1, once per clip')
    flag('train_t_crop', 'random', 'Temporal crop of training clips', choices=['random', 'center'])
    flag('mean_dataset', 'kinetics', 'Mean/std table', choices=['activitynet', 'kinetics', '0.5'])
    g.add_argument('--no_mean_norm', action='store_true', help='Do not subtract the mean')
    g.add_argument('--no_std_norm', action='store_true', help='Do not divide by the std')
    flag('value_scale', 1, 'Pixel range: 1 for [0, 1], 255 for [0, 255]', type=POSITIVE)
    flag('n_val_samples', 3, 'Clips per validation video', type=POSITIVE)
    flag('inference_subset', 'val', 'Subset to infer', choices=['train', 'val', 'test'])
    flag('inference_stride', 16, 'Sliding-window stride in frames', type=NATURAL)
    from preprocessing import add_view_arguments
    add_view_arguments(g)  # --inference_clips, --inference_crop, --inference_short_side, --inference_flip
    flag('n_threads', min(4, available_cpus()), 'DataLoader workers: 4, or the CPUs this process may use if fewer',
         type=NATURAL)
    flag('cpu_threads', 0, 'Intra-op threads of the training process when it runs on the CPU; 0: measured: '
         "every CPU of the process's share at first, then, from the first batches of each epoch (20, or 10 s), "
         'the share less the cores the DataLoader workers were seen to use, at least 1 (with --deterministic: '
         'the whole share, not measured)', type=NATURAL)
    flag('jpeg_decode', 'scaled', 'scaled: decode JPEG frames at 1/2, 1/4 or 1/8 size when the crop still covers '
         'the model input (libjpeg-turbo DCT scaling, faster); full: always at full size', choices=['scaled', 'full'])
    flag('decode_device', 'cpu', 'cpu: the DataLoader workers decode JPEG frames; cuda: the workers only read '
         'their bytes and the main process decodes each batch on the GPU (nvJPEG), then crops, resizes and '
         'flips there', choices=['cpu', 'cuda'])
    g.add_argument('--accimage', action='store_true',
                   help='Accepted for compatibility; frames are decoded with libjpeg-turbo anyway')
    return parser


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The original's optimisation, checkpoint, inference-output and distributed flags."""
    g = parser.add_argument_group('training')
    g.add_argument('--n_pretrain_classes', default=0, type=NATURAL,
                   help='Classes of the --pretrain_path checkpoint (default: %(default)s)')
    g.add_argument('--pretrain_path', default=None, type=Path, help='Checkpoint to fine-tune from')
    g.add_argument('--backbone_weights', default=None, type=Path,
                   help='lstm: a torchvision ImageNet state_dict file of its 2D network (googlenet, resnet18/34/50; '
                        'its classifier and auxiliary heads are left out), loaded into a fresh model, not when '
                        'resuming or fine-tuning; two_stream/fused_two_stream: into both streams, the flow '
                        'stream\'s first conv by cross-modality initialisation. GoogLeNet\'s expect --mean_dataset '
                        '0.5 (torchvision\'s transform_input), the ResNets\' ImageNet normalisation (close to kinetics)')
    g.add_argument('--ft_begin_module', default='', type=str,
                   help='First module to fine-tune (conv1, layer1..4, fc, ...); empty: all')
    g.add_argument('--learning_rate', default=0.1, type=NON_NEGATIVE, help='Initial learning rate')
    g.add_argument('--momentum', default=0.9, type=float_in(0, 1, open_hi=True), help='SGD momentum')
    g.add_argument('--dampening', default=0.0, type=float_in(0, 1), help='SGD dampening (0 with --nesterov)')
    g.add_argument('--weight_decay', default=1e-3, type=NON_NEGATIVE, help='Weight decay')
    g.add_argument('--nesterov', action='store_true', help='Nesterov momentum')
    g.add_argument('--optimizer', default='sgd', type=str, help='Optimizer (sgd)')
    g.add_argument('--lr_scheduler', default='multistep', choices=['multistep', 'plateau', 'cosine'],
                   help='Learning-rate schedule: multistep (x0.1 at --multistep_milestones), plateau (x0.1 when the '
                        'validation loss stalls), cosine (half a cosine from the learning rate at the end of '
                        '--warmup_epochs to 0 at --n_epochs, epoch by epoch; on resume, the flags\' --n_epochs) '
                        '(default: %(default)s)')
    g.add_argument('--multistep_milestones', default=[50, 100, 150], type=POSITIVE, nargs='+',
                   help='Epochs at which the learning rate is multiplied by 0.1')
    g.add_argument('--overwrite_milestones', action='store_true',
                   help='On resume, use --multistep_milestones instead of the checkpoint\'s')
    g.add_argument('--plateau_patience', default=10, type=NATURAL, help='ReduceLROnPlateau patience')
    g.add_argument('--batch_size', default=128, type=POSITIVE, help='Batch size')
    g.add_argument('--inference_batch_size', default=0, type=NATURAL,
                   help='Videos per inference batch; 0: batch_size')
    g.add_argument('--batchnorm_sync', action='store_true', help='SyncBatchNorm (with --distributed)')
    g.add_argument('--n_epochs', default=200, type=POSITIVE, help='Last epoch')
    g.add_argument('--resume_path', default=None, type=Path, help='Checkpoint to resume from')
    g.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    g.add_argument('--no_train', action='store_true', help='Skip training')
    g.add_argument('--no_val', action='store_true', help='Skip validation')
    g.add_argument('--inference', action='store_true', help='Run inference after training')
    g.add_argument('--inference_no_average', action='store_true',
                   help='Write per-clip results instead of the per-video average')
    g.add_argument('--no_cuda', action='store_true', help='Run on the CPU')
    g.add_argument('--checkpoint', default=10, type=NATURAL, help='Save save_<epoch>.pth every n epochs')
    g.add_argument('--keep_checkpoints', default=0, type=NATURAL,
                   help='Keep only the newest n save_<epoch>.pth files, deleting older ones; 0: keep all '
                        '(default: %(default)s)')
    g.add_argument('--manual_seed', default=1, type=SEED, help='Random seed')
    g.add_argument('--output_topk', default=5, type=ANY_INT,
                   help='Top-k labels per video in the inference JSON; <= 0: all')
    g.add_argument('--tensorboard', action='store_true', help='TensorBoard logs in result_path')
    g.add_argument('--distributed', action='store_true', help='DistributedDataParallel')
    g.add_argument('--dist_url', default='tcp://127.0.0.1:23456', type=str, help='Process group init URL')
    g.add_argument('--world_size', default=-1, type=int_in(1, also=(-1,)), help='Number of nodes')
    g = parser.add_argument_group('beyond the original')
    g.add_argument('--precision', default='auto', choices=['auto', 'fp32', 'bf16', 'fp16'],
                   help='auto: on GPUs bf16 autocast where supported, else fp32; on the CPU the fastest of fp32, '
                        'bf16 autocast and bf16 autocast + channels_last_3d in a short probe on a copy of the model '
                        '(one for training, one for validation and inference; a resume keeps the checkpoint\'s; '
                        'fp32 with --deterministic); fp16 uses a gradient scaler (default: %(default)s)')
    g.add_argument('--channels_last', action='store_true', help='channels_last_3d memory format (no probe)')
    g.add_argument('--compile', action='store_true', help='torch.compile the model')
    g.add_argument('--accumulate_steps', default=1, type=POSITIVE,
                   help='Optimizer step every n batches (gradient accumulation) (default: %(default)s)')
    g.add_argument('--multigrid', nargs='?', const='both', default=None, choices=['both', 'long', 'short'],
                   help='Multigrid training (Wu et al., CVPR 2020): coarse clips (fewer frames, smaller crops) '
                        'in larger batches at a proportionally larger learning rate, moving to the full '
                        '--sample_duration x --sample_size by the last learning-rate stage; long: the long cycle '
                        'alone (a shape for several epochs), short: the short cycle alone (the side changes every '
                        'iteration); no value: both. The schedule is printed at the start')
    g.add_argument('--multigrid_min_steps', default=8, type=POSITIVE,
                   help='With --multigrid: a coarse batch grows at most to a rank\'s epoch / this many clips (a small '
                        'training set\'s coarse epoch still takes this many steps); an epoch\'s steps or more: every '
                        'batch stays --batch_size, coarse clips make steps cheaper, not fewer (default: %(default)s)')
    g.add_argument('--multigrid_bn_batches', default='auto', type=or_auto(NATURAL),
                   help='With --multigrid: after an epoch that trained on other shapes, re-estimate the BatchNorm '
                        'statistics on this many batches of full-shape training clips (forward passes only), so '
                        'that validation and the saved checkpoint see full-shape statistics; 0: never, the final '
                        'full-shape stage sets them; auto: the batches that hold 64 clips (default: %(default)s)')
    g.add_argument('--repeat_aug', default=1, type=POSITIVE,
                   help='Repeated augmentation: K training clips per read of a video (each its own temporal position '
                        'and spatial draw), decoded once; a batch of --batch_size clips holds --batch_size / K videos '
                        'and an epoch trains K clips of every video (default: %(default)s)')
    g.add_argument('--label_smoothing', default=0.0, type=float_in(0, 1, open_hi=True), help='Cross-entropy label smoothing')
    g.add_argument('--warmup_epochs', default=0.0, type=NON_NEGATIVE,
                   help='Raise the learning rate linearly from 0 over this many epochs, iteration by iteration')
    g.add_argument('--deterministic', action='store_true',
                   help='Deterministic algorithms and no cudnn.benchmark (slower, repeatable)')
    g.add_argument('--dist_timeout', default=600, type=POSITIVE,
                   help='Seconds before the other ranks give up on a dead one (default: %(default)s)')
    g.add_argument('--checkpoint_every_minutes', default=0.0, type=NON_NEGATIVE,
                   help='Also save save_latest.pth in the middle of an epoch, at the first settled batch after '
                        'this many minutes, so that a crash without a signal loses at most that much training; '
                        '0: only at the end of epochs (default: %(default)s)')
    g.add_argument('--multilabel', action='store_true',
                   help='Multi-label data (annotation labels may be lists): sigmoid + BCE loss; validation '
                        'reports mAP and top-k recall; inference writes per-label sigmoid scores')
    g.add_argument('--pretext', default='', choices=['', 'cubic_puzzle'],
                   help='Self-supervised pretraining instead of classification: cubic_puzzle is '
                        'Space-Time Cubic Puzzles (labels are ignored; fine-tune the checkpoint with --pretrain_path)')
    g.add_argument('--puzzle_jitter', default=0.25, type=NON_NEGATIVE,
                   help='Cubic puzzles: grid cells are this much larger than the pieces, which are placed '
                        'randomly inside them (default: %(default)s)')
    g.add_argument('--no_progress', action='store_true', help='No progress bars')
    g.add_argument('--demo', action='store_true',
                   help='Render the built-in demo dataset and run every step on it (other flags override the demo\'s)')
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full ``main.py`` parser."""
    parser = OneLineParser(description='Train, fine-tune, validate and infer 3D CNNs on video')
    parser.add_argument('--config', default=None, type=Path, metavar='OPTS_JSON',
                        help="Start from a run's recorded options (its result path's opts.json); the flags "
                             'given override them')
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_training_arguments(parser)
    return parser


def _join_root(root: Optional[Path], path: Any) -> Any:
    if root is None or path is None or isinstance(path, str):
        return path
    if isinstance(path, list):
        return [_join_root(root, p) for p in path]
    return root / path


def finalize_opts(opt: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None
                  ) -> argparse.Namespace:
    """Join --root_path, check combinations, and add the original's derived fields."""
    from spatial_transforms import get_mean_std

    def fail(message: str) -> None:
        if parser is not None:
            parser.error(message)
        raise ValueError(message)

    for name in ('video_path', 'flow_path', 'annotation_path', 'result_path', 'resume_path', 'pretrain_path',
                 'backbone_weights'):
        setattr(opt, name, _join_root(opt.root_path, getattr(opt, name)))
    if opt.input_type == 'flow' and opt.file_type != 'hdf5':
        fail('--input_type flow needs --file_type hdf5 (flow is stored as video_u/video_v in hdf5 files)')
    if opt.decode_device == 'cuda' and (opt.file_type == 'video' or opt.input_type != 'rgb' or opt.pretext):
        fail('--decode_device cuda decodes JPEG frames of clips: it needs --file_type jpg or hdf5, '
             '--input_type rgb and no --pretext')
    if opt.model in FRAME_NET_MODELS and opt.channels_last:
        on = 'every frame' if opt.model == 'lstm' else 'its snapshots'
        fail(f'--channels_last is a layout of 3D convolutions: --model {opt.model} runs 2D ones on {on}')
    from datasets.paired import check_rgb_flow_options
    for problem in (check_rgb_flow_options(opt), option_problem(opt)):
        if problem:
            fail(problem)
    if len(MODEL_DEPTHS[opt.model]) > 1 and opt.model_depth not in MODEL_DEPTHS[opt.model]:
        depths = ', '.join(str(d) for d in MODEL_DEPTHS[opt.model])
        fail(f'--model_depth must be one of {depths} for --model {opt.model}, not {opt.model_depth}')
    if opt.backbone_weights is not None and opt.model not in FRAME_NET_MODELS:
        fail(f'--backbone_weights loads a 2D ImageNet network into --model lstm, two_stream or fused_two_stream, '
             f'not --model {opt.model}')
    if opt.model == 'lstm' and opt.pretext:
        fail('--pretext needs one prediction per clip: --model lstm makes one per time step in training')
    if opt.multigrid and (opt.pretext or opt.model in TWO_STREAM_MODELS):
        what = '--pretext cubic_puzzle cuts its own fixed-size cubes' if opt.pretext else \
            f'--model {opt.model} stacks a fixed number of flow frames'
        fail(f'--multigrid varies the clips\' frames and size: {what}')
    if opt.repeat_aug > 1 and opt.pretext:
        fail('--repeat_aug repeats clips of videos: --pretext cubic_puzzle makes puzzles, not clips')
    if opt.repeat_aug > 1 and opt.decode_device == 'cuda':
        fail('--repeat_aug decodes a video\'s clips together in the DataLoader workers: use --decode_device cpu')
    if opt.lr_scheduler == 'plateau' and opt.no_val:
        fail('--lr_scheduler plateau steps on the validation loss: it cannot be used with --no_val')
    if opt.batchnorm_sync and not opt.distributed:
        fail('--batchnorm_sync needs --distributed')
    if opt.optimizer not in ('sgd', 'adamw'):
        fail(f'--optimizer must be sgd or adamw, not {opt.optimizer!r}')
    if opt.multilabel and opt.pretext:
        fail('--multilabel and --pretext cannot be combined: a pretext task makes its own labels')
    if opt.pretext and opt.inference:
        fail('--inference needs a classifier: fine-tune the --pretext checkpoint first (--pretrain_path)')
    if opt.pretext and opt.pretrain_path is not None:
        fail('--pretext trains from scratch: --pretrain_path is for fine-tuning its checkpoint afterwards')
    from preprocessing import INPUT_CHANNELS
    opt.n_input_channels = INPUT_CHANNELS[opt.input_type]
    opt.mean, opt.std = get_mean_std(opt.value_scale, opt.mean_dataset, opt.no_mean_norm, opt.no_std_norm)
    if opt.input_type == 'rgb_flow':  # the flow channels: zero flow (128) to 0, the clipping bound to 1
        from datasets.paired import with_flow_mean_std
        opt.mean, opt.std = with_flow_mean_std(opt.mean, opt.std, opt.value_scale, opt.no_mean_norm, opt.no_std_norm)
    opt.arch = arch_name(opt.model, opt.model_depth)
    opt.begin_epoch = 1
    if opt.pretrain_path is not None:  # the original's fine-tuning semantics of --n_classes
        opt.n_finetune_classes = opt.n_classes
        opt.n_classes = opt.n_pretrain_classes
    return opt


# Keys of opts.json that are not flags, or whose recorded value is not the flag's input: --config skips them.
RECORD_ONLY = {
    'mean': 'from --mean_dataset, --value_scale, --no_mean_norm, --no_std_norm (or a resumed checkpoint)',
    'std': 'as mean',
    'arch': 'from --model and --model_depth',
    'begin_epoch': '1, or the resumed checkpoint\'s epoch + 1',
    'command_line': 'the arguments of the recorded run',
    'model_options': 'repeats the model flags',
    'preprocessing': 'repeats the clip flags (and mean/std)',
    'n_finetune_classes': 'the --n_classes of a fine-tuning run (read back as --n_classes)',
    'root_path': 'already joined to the recorded paths',
    'config': 'the file the recorded run itself started from',
    'resume_path': 'a run resumes only when asked: a re-run from the record starts fresh unless --resume_path is given',
}


def config_defaults(parser: argparse.ArgumentParser, path: Path) -> Dict[str, Any]:
    """The flag values a run's ``opts.json`` (``run_record``) records, as defaults for ``parser``."""
    from runs.run_config import flag_defaults, read_record
    record = read_record(path)
    if record.get('pretrain_path') is not None and 'n_finetune_classes' in record:
        record['n_classes'] = record['n_finetune_classes']  # recorded n_classes: the pretrained model's
    return flag_defaults(parser, record, str(path), ignored=RECORD_ONLY)


def parse_opts(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` (default: sys.argv[1:]) into the options namespace.

    With ``--config OPTS_JSON`` the recorded options are the defaults: every flag given on
    the command line overrides them, wherever it stands.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    config = parser.parse_args(argv).config
    if config is not None:
        try:
            parser.set_defaults(**config_defaults(parser, config))
        except UserError as e:
            parser.error(str(e))
    opt = finalize_opts(parser.parse_args(argv), parser)
    opt.command_line = [str(a) for a in argv]
    return opt


def options_record(opt: argparse.Namespace) -> Dict[str, Any]:
    """Every option as JSON-ready values (paths as strings), for ``opts.json``."""
    return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list)
                and v and isinstance(v[0], Path) else v) for k, v in vars(opt).items()}


def run_record(opt: argparse.Namespace, model: Mapping[str, Any], preprocessing: Mapping[str, Any],
               **used: Any) -> Dict[str, Any]:
    """``opts.json``: every option as the run used it, with the model it built and the preprocessing it applied.

    A resumed checkpoint's model, preprocessing and ``used`` values (e.g. ``ft_begin_module``)
    replace differing flags. Under fine-tuning
    ``n_classes`` keeps the original's meaning (the pretrained model's) and the new head's
    count is ``n_finetune_classes``. ``model_options`` and ``preprocessing`` repeat what the
    checkpoints record.
    """
    record = options_record(opt)
    record.update({k: v for k, v in model.items() if k != 'n_classes'})
    record['n_finetune_classes' if opt.pretrain_path is not None else 'n_classes'] = model['n_classes']
    record.update({k: list(v) if isinstance(v, tuple) else v for k, v in preprocessing.items()})
    record.update(arch=arch_name(model['model'], model['model_depth']), model_options=dict(model),
                  preprocessing=dict(preprocessing), **used)
    return record
