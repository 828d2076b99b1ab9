"""Every model family: shapes, gradients, key names and shapes, and the original's parameter counts."""
import pytest
import torch
import torch.nn.functional as F

from models import MODEL_DEPTHS, generate_model
from models.resnet import ZeroPadShortcut
from training import criterion_for

# Small configurations of every family (tiny widths keep the wide ones fast on CPU).
SMALL = [
    dict(model='resnet', model_depth=10),
    dict(model='resnet', model_depth=10, resnet_shortcut='A'),
    dict(model='resnet', model_depth=50, resnet_widen_factor=0.25),
    dict(model='resnet2p1d', model_depth=10),
    dict(model='resnet2p1d', model_depth=50, resnet_widen_factor=0.25, resnet_shortcut='A'),
    dict(model='preresnet', model_depth=10),
    dict(model='preresnet', model_depth=50, resnet_widen_factor=0.25),
    dict(model='wideresnet', model_depth=50, wide_resnet_k=1, resnet_widen_factor=0.25),
    dict(model='resnext', model_depth=50, resnet_widen_factor=0.25),
    dict(model='resnext', model_depth=50, resnet_widen_factor=0.25, resnext_cardinality=8),
    dict(model='densenet', model_depth=121),
    dict(model='c3d'),
    dict(model='lstm', model_depth=22),
    dict(model='lstm', model_depth=18),
    dict(model='two_stream', model_depth=22, n_input_channels=5, flow_frames=4),  # RGB + flow clips
    dict(model='fused_two_stream', model_depth=18, n_input_channels=5, flow_frames=4),
]


def _id(cfg):
    return '-'.join(str(v) for v in cfg.values())


def meta_model(**kwargs):
    with torch.device('meta'):
        return generate_model(**kwargs)


@pytest.mark.parametrize('cfg', SMALL, ids=_id)
def test_forward_backward_every_family(cfg):
    model = generate_model(n_classes=5, **cfg)
    # DenseNet halves T, H and W in each of its transitions, so it needs a larger clip.
    channels = cfg.get('n_input_channels', 3)
    x = torch.randn(2, 3, 16, 64, 64) if cfg['model'] == 'densenet' else torch.randn(2, channels, 8, 32, 32)
    out = model(x)
    assert out.shape == ((2, 5, 8) if cfg['model'] == 'lstm' else (2, 5))  # lstm trains on every time step
    criterion_for(False)(out, torch.tensor([1, 3])).backward()
    assert model.eval()(x).shape == (2, 5)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


@pytest.mark.parametrize('cfg', SMALL[:2] + SMALL[3:4], ids=_id)
def test_options_change_input_and_stem(cfg):
    model = generate_model(n_classes=4, n_input_channels=2, conv1_t_size=3, conv1_t_stride=2,
                           no_max_pool=True, **cfg).eval()
    assert model(torch.randn(1, 2, 8, 40, 48)).shape == (1, 4)


# Reference counts: the original code run with its keyword bugs fixed (n_classes=400 unless set).
PARAM_COUNTS = [
    (dict(model='resnet', model_depth=10), 14_604_624),
    (dict(model='resnet', model_depth=18), 33_409_104),
    (dict(model='resnet', model_depth=18, resnet_shortcut='A'), 33_235_280),
    (dict(model='resnet', model_depth=34), 63_718_736),
    (dict(model='resnet', model_depth=34, resnet_shortcut='A'), 63_544_912),
    (dict(model='resnet', model_depth=50), 47_018_576),
    (dict(model='resnet', model_depth=101), 86_064_720),
    (dict(model='resnet', model_depth=152), 118_223_440),
    (dict(model='resnet', model_depth=200), 127_423_056),
    (dict(model='resnet2p1d', model_depth=10), 14_608_044),
    (dict(model='resnet2p1d', model_depth=18), 33_421_164),
    (dict(model='resnet2p1d', model_depth=50), 47_035_382),
    (dict(model='resnext', model_depth=50), 26_775_824),
    (dict(model='resnext', model_depth=101), 48_431_376),
    (dict(model='wideresnet', model_depth=50), 158_338_832),
    (dict(model='preresnet', model_depth=18), 33_408_208),
    (dict(model='preresnet', model_depth=200), 127_419_088),
    (dict(model='densenet', model_depth=121), 11_696_528),
    (dict(model='densenet', model_depth=169), 19_252_624),
    (dict(model='resnet', model_depth=18, conv1_t_size=3, no_max_pool=True), 33_371_472),
    (dict(model='resnet', model_depth=50, conv1_t_size=1), 46_962_128),
    (dict(model='resnet', model_depth=50, resnet_widen_factor=2.0), 186_196_752),
    (dict(model='resnet', model_depth=18, n_input_channels=2), 33_387_152),
    # released checkpoints' shapes
    (dict(model='resnet', model_depth=18, n_classes=700), 33_563_004),   # r3d18_K
    (dict(model='resnet', model_depth=18, n_classes=1039), 33_736_911),  # r3d18_KM
    (dict(model='resnet', model_depth=50, n_classes=700), 47_633_276),   # r3d50_K
    (dict(model='resnet', model_depth=50, n_classes=1039), 48_327_887),  # r3d50_KM
    (dict(model='resnet', model_depth=200, n_classes=1039), 128_732_367),
    (dict(model='resnet2p1d', model_depth=18, n_classes=700), 33_575_064),
    (dict(model='resnet2p1d', model_depth=34, n_classes=700), 63_901_400),
    (dict(model='resnet2p1d', model_depth=50, n_classes=1039), 48_344_693),
]


@pytest.mark.parametrize('cfg,count', PARAM_COUNTS, ids=[_id(c) for c, _ in PARAM_COUNTS])
def test_parameter_counts_match_original(cfg, count):
    model = meta_model(**cfg)
    assert sum(p.numel() for p in model.parameters()) == count


STATE_DICT_ENTRIES = [
    ('resnet', 10, 74), ('resnet', 18, 122), ('resnet', 34, 218), ('resnet', 50, 320),
    ('resnet', 101, 626), ('resnet', 152, 932), ('resnet', 200, 1220),
    ('resnet2p1d', 18, 224), ('resnet2p1d', 50, 422), ('resnext', 101, 626), ('densenet', 121, 727),
]


@pytest.mark.parametrize('model,depth,entries', STATE_DICT_ENTRIES)
def test_state_dict_entry_counts(model, depth, entries):
    assert len(meta_model(model=model, model_depth=depth).state_dict()) == entries


def _shapes(**cfg):
    return {k: tuple(v.shape) for k, v in meta_model(**cfg).state_dict().items()}


KEY_SHAPES = [
    (dict(model='resnet', model_depth=18), {
        'conv1.weight': (64, 3, 7, 7, 7), 'bn1.running_var': (64,), 'bn1.num_batches_tracked': (),
        'layer1.0.conv1.weight': (64, 64, 3, 3, 3), 'layer1.1.bn2.bias': (64,),
        'layer2.0.conv1.weight': (128, 64, 3, 3, 3), 'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1),
        'layer2.0.downsample.1.running_mean': (128,), 'layer4.1.conv2.weight': (512, 512, 3, 3, 3),
        'fc.weight': (400, 512), 'fc.bias': (400,)}),
    (dict(model='resnet', model_depth=50), {
        'layer1.0.downsample.0.weight': (256, 64, 1, 1, 1), 'layer1.0.conv3.weight': (256, 64, 1, 1, 1),
        'layer4.2.bn3.weight': (2048,), 'fc.weight': (400, 2048)}),
    (dict(model='resnet2p1d', model_depth=18), {
        'conv1_s.weight': (110, 3, 1, 7, 7), 'bn1_s.weight': (110,), 'conv1_t.weight': (64, 110, 7, 1, 1),
        'bn1_t.running_mean': (64,), 'layer1.0.conv1_s.weight': (144, 64, 1, 3, 3),
        'layer1.0.conv1_t.weight': (64, 144, 3, 1, 1), 'layer1.0.conv2_s.weight': (144, 64, 1, 3, 3),
        'layer1.0.bn2_t.weight': (64,), 'layer2.0.conv1_s.weight': (230, 64, 1, 3, 3),
        'layer2.0.conv1_t.weight': (128, 230, 3, 1, 1), 'layer2.0.conv2_s.weight': (288, 128, 1, 3, 3),
        'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1), 'layer3.0.conv1_s.weight': (460, 128, 1, 3, 3),
        'layer4.0.conv1_s.weight': (921, 256, 1, 3, 3), 'layer4.1.conv2_s.weight': (1152, 512, 1, 3, 3),
        'fc.weight': (400, 512)}),
    (dict(model='resnet2p1d', model_depth=50), {
        'layer1.0.conv1.weight': (64, 64, 1, 1, 1), 'layer1.0.conv2_s.weight': (144, 64, 1, 3, 3),
        'layer4.0.conv2_t.weight': (512, 1152, 3, 1, 1), 'layer4.0.conv3.weight': (2048, 512, 1, 1, 1)}),
    (dict(model='preresnet', model_depth=18), {
        'layer2.0.bn1.weight': (64,), 'layer2.0.conv1.weight': (128, 64, 3, 3, 3),
        'layer2.0.bn2.weight': (128,), 'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1)}),
    (dict(model='preresnet', model_depth=50), {
        'layer2.0.bn1.weight': (256,), 'layer2.0.bn3.weight': (128,),
        'layer2.0.conv3.weight': (512, 128, 1, 1, 1)}),
    (dict(model='wideresnet', model_depth=50), {
        'conv1.weight': (128, 3, 7, 7, 7), 'layer1.0.conv1.weight': (128, 128, 1, 1, 1),
        'layer1.0.conv3.weight': (256, 128, 1, 1, 1), 'layer4.0.conv2.weight': (1024, 1024, 3, 3, 3),
        'fc.weight': (400, 2048)}),
    (dict(model='resnext', model_depth=101), {
        'conv1.weight': (128, 3, 7, 7, 7), 'layer1.0.conv2.weight': (128, 4, 3, 3, 3),
        'layer4.0.conv2.weight': (1024, 32, 3, 3, 3), 'fc.weight': (400, 2048)}),
    (dict(model='densenet', model_depth=121), {
        'features.conv1.weight': (64, 3, 7, 7, 7), 'features.norm1.weight': (64,),
        'features.denseblock1.denselayer1.norm1.weight': (64,),
        'features.denseblock1.denselayer1.conv1.weight': (128, 64, 1, 1, 1),
        'features.denseblock1.denselayer1.conv2.weight': (32, 128, 3, 3, 3),
        'features.transition1.norm.weight': (256,), 'features.transition1.conv.weight': (128, 256, 1, 1, 1),
        'features.denseblock4.denselayer16.conv2.weight': (32, 128, 3, 3, 3),
        'features.norm5.weight': (1024,), 'classifier.weight': (400, 1024), 'classifier.bias': (400,)}),
]


@pytest.mark.parametrize('cfg,expected', KEY_SHAPES, ids=[_id(c) for c, _ in KEY_SHAPES])
def test_key_names_and_shapes_match_original(cfg, expected):
    shapes = _shapes(**cfg)
    assert {k: shapes.get(k) for k in expected} == expected


def test_shortcut_a_has_no_parameters_and_no_downsample_keys():
    shapes = _shapes(model='resnet', model_depth=18, resnet_shortcut='A')
    assert not [k for k in shapes if 'downsample' in k]


def test_parameter_order_starts_at_the_stem():
    """--ft_begin_module walks parameters in definition order, as the original does."""
    r2p1d = [n.split('.')[0] for n, _ in meta_model(model='resnet2p1d', model_depth=10).named_parameters()]
    assert list(dict.fromkeys(r2p1d)) == ['conv1_s', 'bn1_s', 'conv1_t', 'bn1_t', 'layer1',
                                          'layer2', 'layer3', 'layer4', 'fc']
    pre = [n for n, _ in meta_model(model='preresnet', model_depth=10).named_parameters()]
    assert pre[3:7] == ['layer1.0.bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.conv1.weight',
                        'layer1.0.bn2.weight']


@pytest.mark.parametrize('cfg,layer4_thw', [
    (dict(), (1, 4, 4)),
    (dict(no_max_pool=True), (2, 7, 7)),
    (dict(conv1_t_stride=2), (1, 4, 4)),
    (dict(conv1_t_size=3, no_max_pool=True), (2, 7, 7)),
])
def test_feature_map_sizes(cfg, layer4_thw):
    model = meta_model(model='resnet', model_depth=18, **cfg)
    seen = {}

    def hook(module, inputs, output):
        seen['shape'] = output.shape

    model.layer4.register_forward_hook(hook)
    model(torch.empty(1, 3, 16, 112, 112, device='meta'))
    assert tuple(seen['shape'][2:]) == layer4_thw


def test_shortcut_a_matches_the_original_formula_and_passes_gradients():
    x = torch.randn(2, 4, 5, 7, 6, requires_grad=True)
    out = ZeroPadShortcut(10, 2)(x)
    pooled = F.avg_pool3d(x.detach(), kernel_size=1, stride=2)
    reference = torch.cat([pooled, torch.zeros(2, 6, *pooled.shape[2:])], dim=1)
    assert torch.equal(out.detach(), reference)
    out.sum().backward()
    assert x.grad[:, :, ::2, ::2, ::2].eq(1).all() and x.grad.sum() == x[:, :, ::2, ::2, ::2].numel()


def test_r2p1d_stem_width_formula_and_torchvision_options():
    assert _shapes(model='resnet2p1d', model_depth=18, conv1_t_size=3)['conv1_s.weight'][0] == 83
    tv = _shapes(model='resnet2p1d', model_depth=18, conv1_t_size=3, no_max_pool=True,
                 r2p1d_mid_planes='block', r2p1d_stem_mid_planes=45)
    assert tv['conv1_s.weight'] == (45, 3, 1, 7, 7)
    assert tv['layer2.0.conv2_s.weight'] == (230, 128, 1, 3, 3)  # per block: torchvision's 230
    assert tv['layer2.1.conv1_s.weight'] == (288, 128, 1, 3, 3)
    flow = _shapes(model='resnet2p1d', model_depth=18, n_input_channels=2)
    assert flow["conv1_s.weight"] == (80, 2, 1, 7, 7)  # formula uses the real channel count


def test_unknown_model_or_depth_is_a_one_line_error_listing_choices():
    with pytest.raises(ValueError) as e:
        generate_model(model='resnet3d')
    assert '\n' not in str(e.value)
    for name in MODEL_DEPTHS:
        assert name in str(e.value)
    with pytest.raises(ValueError, match='resnext has no depth 18: choose one of 50, 101, 152, 200'):
        generate_model(model='resnext', model_depth=18)
    with pytest.raises(ValueError, match='densenet has no depth 50: choose one of 121, 169, 201, 264'):
        generate_model(model='densenet', model_depth=50)
    with pytest.raises(ValueError, match="resnet_shortcut must be 'A' or 'B'"):
        generate_model(resnet_shortcut='C')
    with pytest.raises(TypeError):
        generate_model(model_dept=18)


def test_eval_output_is_deterministic_for_any_clip_size():
    model = generate_model(model='resnet', model_depth=10, n_classes=3).eval()
    x = torch.randn(1, 3, 12, 40, 56)
    assert torch.equal(model(x), model(x))
