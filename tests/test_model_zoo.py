"""soc.model_zoo: configs by name, from the package's copy (an installed soc-detectron2) or, in a source
checkout without it, from projects/SOC/configs; ``_BASE_`` chains resolved where the file lies."""

import os
import shutil
from pathlib import Path

import pytest

from soc import model_zoo
from soc.model_zoo import model_zoo as zoo

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "projects" / "SOC" / "configs"


def test_every_yaml_of_the_project_is_found_by_name():
    files = sorted(REPO_CONFIGS.rglob("*.yaml"))
    assert len(files) >= 20
    names = [f.relative_to(REPO_CONFIGS).with_suffix("").as_posix() for f in files]
    assert sorted(model_zoo.list_configs()) == sorted(names)
    for name, f in zip(names, files):
        for spelling in (name, name + ".yaml"):
            assert os.path.samefile(model_zoo.get_config_file(spelling), f), spelling


def test_get_config_follows_the_base_chain_and_applies_overrides():
    # ref_davis/soc_swin_b_joint_eval -> ref_ytvos/soc_swin_b_joint -> soc_swin_t_joint -> Base-RefYTVOS
    # -> Base-SOC: a key from every level
    cfg = model_zoo.get_config("ref_davis/soc_swin_b_joint_eval", ["SOLVER.BASE_LR", "0.5"])
    assert cfg.is_frozen()
    assert cfg.DATASETS.TEST == ("ref_davis17_val",) and cfg.MODEL.SOC.TEST.CLIP_LENGTH == 36
    assert cfg.MODEL.VIDEO_SWIN.EMBED_DIM == 128 and cfg.MODEL.VIDEO_SWIN.DEPTHS == [2, 2, 18, 2]
    assert cfg.MODEL.SOC.TEXT_ENCODER.FREEZE is False and cfg.SOLVER.MAX_ITER == 300000
    assert cfg.SOLVER.IMS_PER_BATCH == 8
    assert cfg.MODEL.META_ARCHITECTURE == "SOC" and cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE == 0.1
    assert cfg.SOLVER.BASE_LR == 0.5
    with pytest.raises(ValueError, match="INPUT.FLIP_PROB = 2.0"):  # checked as setup_cfg checks
        model_zoo.get_config("ref_ytvos/soc_swin_t_joint", ["INPUT.FLIP_PROB", "2.0"])


@pytest.mark.parametrize(
    "name, close",
    [
        ("soc_swin_t_joint", "ref_ytvos/soc_swin_t_joint"),  # folder forgotten
        ("ref_ytvos/soc_swin_t_jont.yaml", "ref_ytvos/soc_swin_t_joint"),  # typo
        ("ref-ytvos/soc_swin_b_joint", "ref_ytvos/soc_swin_b_joint"),
    ],
)
def test_unknown_names_list_close_ones(name, close):
    with pytest.raises(ValueError, match=f"no SOC config named '{name}'; close names: .*{close}"):
        model_zoo.get_config_file(name)


def test_names_cannot_leave_the_config_folder():
    for name in ("../../../setup", "/etc/passwd", "ref_ytvos/../Base-SOC/../../README"):
        with pytest.raises(ValueError, match="no SOC config named"):
            model_zoo.get_config_file(name)


def test_installed_copy_is_preferred_and_its_bases_resolve_there(tmp_path, monkeypatch):
    installed = tmp_path / "site-packages" / "soc" / "model_zoo" / "configs"
    shutil.copytree(REPO_CONFIGS, installed)
    # a value changed in the copy's root base proves that the whole chain is read from the copy
    base = installed / "Base-SOC.yaml"
    base.write_text(base.read_text().replace("BASE_LR: 0.0001", "BASE_LR: 0.0042"))
    monkeypatch.setattr(zoo, "_PACKAGE_CONFIGS", installed)
    path = model_zoo.get_config_file("ref_ytvos/soc_swin_t_joint")
    assert Path(path) == installed / "ref_ytvos" / "soc_swin_t_joint.yaml"
    assert model_zoo.get_config("ref_ytvos/soc_swin_t_joint").SOLVER.BASE_LR == 0.0042
    assert model_zoo.get_config("ref_davis/soc_swin_b_joint_eval").SOLVER.BASE_LR == 0.0042


def test_a_checkout_without_the_link_reads_the_repository(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "_PACKAGE_CONFIGS", tmp_path / "absent")
    path = model_zoo.get_config_file("synthetic/soc_tiny_synth")
    assert Path(path) == REPO_CONFIGS / "synthetic" / "soc_tiny_synth.yaml"
    monkeypatch.setattr(zoo, "_REPOSITORY_CONFIGS", tmp_path / "also_absent")
    with pytest.raises(FileNotFoundError, match="reinstall soc-detectron2"):
        model_zoo.get_config_file("synthetic/soc_tiny_synth")
