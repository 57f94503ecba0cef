"""Every YAML under projects/SOC/configs parses with add_soc_config, and unknown keys are rejected."""

from pathlib import Path

import pytest
from detectron2.config import get_cfg

from soc.config import add_soc_config, setup_cfg

CONFIG_DIR = Path(__file__).resolve().parents[1] / "projects" / "SOC" / "configs"
YAMLS = sorted(CONFIG_DIR.rglob("*.yaml"))


def _load(path: Path):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(str(path))
    return cfg


def test_configs_exist():
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in YAMLS}
    for required in (
        "Base-SOC.yaml",
        "ref_ytvos/soc_swin_t_scratch.yaml",
        "ref_ytvos/soc_swin_b_joint.yaml",
        "a2d_sentences/soc_swin_t_scratch.yaml",
        "synthetic/soc_tiny_synth.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_every_config_parses(path: Path):
    cfg = _load(path)
    assert cfg.MODEL.META_ARCHITECTURE == "SOC"
    assert cfg.MODEL.BACKBONE.NAME in ("build_video_swin_backbone", "build_timm_frame_backbone")
    # slot-aligned add-back of the video queries needs as many video as frame queries
    assert cfg.MODEL.SOC.VOC.NUM_QUERIES == cfg.MODEL.SOC.DECODER.NUM_QUERIES
    assert len(cfg.MODEL.VIDEO_SWIN.DEPTHS) == len(cfg.MODEL.VIDEO_SWIN.NUM_HEADS) == 4


def test_unknown_key_is_rejected(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{CONFIG_DIR / "Base-SOC.yaml"}"\nMODEL:\n  SOC:\n    NOT_A_KEY: 1\n')
    with pytest.raises(KeyError, match="NOT_A_KEY"):
        _load(bad)


def test_paper_defaults():
    cfg = get_cfg()
    add_soc_config(cfg)
    soc = cfg.MODEL.SOC
    assert (soc.LOSS.CLASS_WEIGHT, soc.LOSS.BBOX_WEIGHT, soc.LOSS.GIOU_WEIGHT) == (2.0, 2.0, 2.0)
    assert (soc.LOSS.DICE_WEIGHT, soc.LOSS.MASK_FOCAL_WEIGHT, soc.LOSS.CONTRASTIVE_WEIGHT) == (5.0, 2.0, 1.0)
    assert (soc.MATCHER.COST_CLASS, soc.MATCHER.COST_DICE, soc.MATCHER.COST_BBOX, soc.MATCHER.COST_GIOU) == (
        2.0,
        5.0,
        2.0,
        2.0,
    )
    assert soc.DECODER.NUM_QUERIES == 20 and soc.HIDDEN_DIM == 256
    assert cfg.INPUT.SAMPLING_FRAME_NUM == 8


def test_add_soc_config_keeps_detectron2_defaults():
    before = get_cfg()
    after = get_cfg()
    add_soc_config(after)
    for key in ("SEED", "DATALOADER", "TEST"):
        b, a = before.get(key), after.get(key)
        if hasattr(b, "items"):
            for k, v in b.items():
                assert a[k] == v, f"{key}.{k} changed"
        else:
            assert a == b


def _leaves(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("path", [p for p in YAMLS if "_BASE_" in p.read_text()], ids=lambda p: p.stem)
def test_no_key_repeats_its_base(path: Path):
    """A key set in a YAML changes what its ``_BASE_`` chain gives (detectron2's yaml merge semantics)."""
    import yaml

    own = yaml.safe_load(path.read_text())
    base = _load(path.parent / own.pop("_BASE_"))
    for key, value in _leaves(own):
        inherited = base
        for part in key.split("."):
            inherited = inherited[part]
        if isinstance(inherited, tuple) and isinstance(value, list):
            inherited = list(inherited)
        assert value != inherited, f"{path.name}: {key} repeats its base's value {value!r}"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_every_config_passes_the_range_checks(path):
    setup_cfg(str(path))


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("MODEL.SOC.HIDDEN_DIM", "64", "multiple of 128"),
        ("INPUT.MIN_SIZE_TEST", "0", ">= 1 pixel"),
        ("MODEL.WEIGHTS_MIN_MATCHED", "1.5", "a share in [0, 1]"),
        ("MODEL.SOC.TEST.WINDOW_OVERLAP", "-1", ">= 0 frames"),
        ("MODEL.SOC.TEST.ASSOCIATION", "'nearest'", "iou_embedding"),
        ("MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT", "-1.0", ">= 0"),
        ("INPUT.SAMPLING_FRAME_NUM", "0", ">= 1 frame"),
        ("SOLVER.IMS_PER_BATCH", "0", ">= 1 clip"),
        ("MODEL.SOC.TEST.CLIP_LENGTH", "-5", ">= 0"),
        ("INPUT.MIN_SIZE_TRAIN", "(96, 0)", "sizes >= 1"),
        ("MODEL.SOC.DECODER.DROPOUT", "1.0", "in [0, 1)"),
        ("SOLVER.CHECKPOINT_PERIOD", "0", ">= 1 iteration"),
        ("MODEL.SOC.TEST.PRECISION", "'fp64'", "fp32 | bf16 | fp16"),
        ("MODEL.SOC.TEST.PRECISION", "'fp16'", "needs CUDA"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(key, value, allowed):
    with pytest.raises(ValueError) as err:
        setup_cfg(str(CONFIG_DIR / "synthetic" / "soc_tiny_synth.yaml"), [key, value])
    assert key in str(err.value) and allowed in str(err.value)


def test_every_bad_value_is_reported_at_once():
    opts = ["INPUT.MIN_SIZE_TEST", "0", "SOLVER.IMS_PER_BATCH", "0"]
    with pytest.raises(ValueError) as err:
        setup_cfg(str(CONFIG_DIR / "synthetic" / "soc_tiny_synth.yaml"), opts)
    assert "INPUT.MIN_SIZE_TEST = 0" in str(err.value) and "SOLVER.IMS_PER_BATCH = 0" in str(err.value)


def test_a_value_of_the_wrong_type_names_the_key():
    with pytest.raises(ValueError, match="SAMPLING_FRAME_NUM"):
        setup_cfg(
            str(CONFIG_DIR / "synthetic" / "soc_tiny_synth.yaml"), ["INPUT.SAMPLING_FRAME_NUM", "'five'"]
        )


def test_setup_cfg_takes_a_model_zoo_name_where_no_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no projects/ folder here, as after a pip install
    by_name = setup_cfg("synthetic/soc_tiny_synth", ["SOLVER.MAX_ITER", "7"])
    by_path = setup_cfg(str(CONFIG_DIR / "synthetic" / "soc_tiny_synth.yaml"), ["SOLVER.MAX_ITER", "7"])
    assert by_name == by_path and by_name.SOLVER.MAX_ITER == 7
    local = tmp_path / "synthetic" / "soc_tiny_synth"  # a file of that name wins over the model zoo
    local.parent.mkdir()
    local.write_text(f"_BASE_: {CONFIG_DIR / 'synthetic' / 'soc_tiny_synth.yaml'}\nSOLVER:\n  MAX_ITER: 3\n")
    assert setup_cfg("synthetic/soc_tiny_synth").SOLVER.MAX_ITER == 3
    with pytest.raises(
        FileNotFoundError, match=r"'synthetic/soc_tiny_synt'.*close names: synthetic/soc_tiny_synth"
    ):
        setup_cfg("synthetic/soc_tiny_synt")
