"""Weights named by URI instead of a local path.

- ``hf://<owner>/<repo>[@<revision>]/<path in the repo>``: a file on the Hugging Face Hub, fetched with
  ``huggingface_hub.hf_hub_download`` into the Hub's cache (once; ``HF_HUB_OFFLINE=1`` reads the cache only).
  :class:`HuggingFaceHubHandler` is registered on detectron2's ``PathManager``, so every path the checkpointer
  reads may be one (``MODEL.WEIGHTS``, ``MODEL.VIDEO_SWIN.PRETRAINED``).
- ``torchvision://<Swin3D weights>``, e.g. ``torchvision://Swin3D_T_Weights.KINETICS400_V1``: torchvision's
  Kinetics Swin3D weights, fetched by ``torchvision.models.get_weight(name).get_state_dict`` into torch's hub
  cache (hash checked, read with ``weights_only=True``), for ``MODEL.VIDEO_SWIN.PRETRAINED`` only: they hold a
  backbone (see :func:`soc.checkpoint.convert.convert_torchvision_swin3d`).
"""

from typing import Any, Dict, IO, List, Optional, Tuple, Union

from detectron2.utils.file_io import PathHandler, PathManager
from torch import Tensor

__all__ = [
    "HF_PREFIX",
    "TORCHVISION_PREFIX",
    "HuggingFaceHubHandler",
    "load_torchvision_swin3d",
    "parse_hf_uri",
    "torchvision_swin3d_names",
]

HF_PREFIX = "hf://"
TORCHVISION_PREFIX = "torchvision://"


def parse_hf_uri(uri: str) -> Tuple[str, Optional[str], str]:
    """``hf://owner/repo[@revision]/path/file.pth`` → ``("owner/repo", revision or None, "path/file.pth")``.

    Raises:
        ValueError: ``uri`` lacks the owner, the repository or the file.
    """
    parts = uri[len(HF_PREFIX) :].split("/", 2) if uri.startswith(HF_PREFIX) else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{uri!r}: expected hf://<owner>/<repo>[@<revision>]/<path of the file in the repo>")
    owner, repo, filename = parts
    repo, _, revision = repo.partition("@")
    if not repo:
        raise ValueError(f"{uri!r}: the repository name is empty")
    return f"{owner}/{repo}", revision or None, filename


class HuggingFaceHubHandler(PathHandler):
    """Resolves ``hf://`` URIs (see :func:`parse_hf_uri`) to files in the local Hugging Face Hub cache."""

    def _get_supported_prefixes(self) -> List[str]:
        return [HF_PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        """Download the file unless cached (``force``: again) and return its local path.

        Raises:
            FileNotFoundError: the repository, revision or file does not exist (or is private), or the Hub is
                unreachable and the file is not cached; the message names ``path``.
        """
        self._check_kwargs(kwargs)
        repo_id, revision, filename = parse_hf_uri(path)
        import huggingface_hub
        from huggingface_hub.utils import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        try:
            return huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, force_download=force)
        except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as e:
            # LocalEntryNotFoundError (offline, not cached) is an EntryNotFoundError
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FileNotFoundError(f"{path}: cannot be fetched from the Hugging Face Hub ({reason})") from e

    def _open(
        self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any
    ) -> Union[IO[str], IO[bytes]]:
        self._check_kwargs(kwargs)
        if any(c in mode for c in "wax+"):
            raise ValueError(f"{path}: hf:// files are read-only (mode {mode!r})")
        return open(self._get_local_path(path), mode, buffering=buffering)


PathManager.register_handler(HuggingFaceHubHandler())


def torchvision_swin3d_names() -> List[str]:
    """The weights ``torchvision://`` accepts: ``Swin3D_{T,S,B}_Weights.<member>`` (torchvision's Kinetics
    Swin3D, e.g. ``Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1``)."""
    from torchvision.models import get_model_weights

    return [
        f"{w.__class__.__name__}.{w.name}"
        for m in ("swin3d_t", "swin3d_s", "swin3d_b")
        for w in get_model_weights(m)
    ]


def load_torchvision_swin3d(uri: str) -> Dict[str, Tensor]:
    """
    The state_dict of torchvision's Swin3D weights named by ``torchvision://<Enum>.<member>``, downloaded once
    into torch's hub cache (``$TORCH_HOME/hub/checkpoints``), its hash checked, read on the CPU with
    ``weights_only=True``. Keys and shapes are torchvision's ``SwinTransformer3d`` ones (patch 2×4×4, with the
    final ``norm`` and the Kinetics-400 ``head``).

    Raises:
        ValueError: ``uri`` names no Swin3D weights of torchvision; the message lists those that exist.
    """
    from torchvision.models import get_weight

    name = uri[len(TORCHVISION_PREFIX) :] if uri.startswith(TORCHVISION_PREFIX) else uri
    known = torchvision_swin3d_names()
    if name not in known:
        raise ValueError(
            f"{uri!r}: torchvision:// takes the Swin3D weights of torchvision: {', '.join(known)}"
        )
    return get_weight(name).get_state_dict(map_location="cpu", check_hash=True, weights_only=True)
