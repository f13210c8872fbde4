"""The predictor network: a pretrained transformer, masked mean pooling, a linear head.

Mean pooling that ignores padded positions makes the score independent of how far a prompt is
padded (Triton's preprocessing pads to a multiple of 16, its `predictor_pad_multiple`). Any Hugging Face encoder or decoder
directory works (MiniLM by default, OPT-125M as in the paper). For BERT and MPNet backbones the
lower, frozen layers can run once per prompt and be cached (`embed_lower` / `forward_upper`),
which is what makes training fit in minutes on two CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

HEAD_FILE = "head.pt"
CONFIG_FILE = "ranker.json"


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S] 0/1 mask -> [B, 1, 1, S] additive attention mask (0 keep, very negative drop)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class LengthPredictor(nn.Module):
    """score(input_ids, attention_mask) -> [B, n_outputs]; n_outputs = 1 for rank scores."""

    def __init__(self, backbone_dir: str | Path, n_outputs: int = 1) -> None:
        super().__init__()
        from transformers import AutoModel

        self.backbone_dir = str(backbone_dir)
        # eager attention: exports cleanly to ONNX and takes the explicit additive mask.
        self.backbone = AutoModel.from_pretrained(self.backbone_dir, attn_implementation="eager")
        cfg = self.backbone.config
        hidden = getattr(cfg, "word_embed_proj_dim", None) or cfg.hidden_size
        self.n_outputs = n_outputs
        self.head = nn.Linear(hidden, n_outputs)

    # ---- full model (what is exported) -------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        return self.head(masked_mean(out.last_hidden_state, attention_mask))

    # ---- split model for cached training (BERT, MPNet) ----------------------------------
    @property
    def supports_layer_cache(self) -> bool:
        return self.backbone.config.model_type in {"bert", "mpnet"}

    def layers(self) -> nn.ModuleList:
        return self.backbone.encoder.layer

    def embed_lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_lower: int) -> torch.Tensor:
        """Hidden states after the embeddings and the first n_lower layers."""
        h = self.backbone.embeddings(input_ids=input_ids)
        return self._run_layers(h, attention_mask, 0, n_lower)

    def forward_upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, n_lower: int) -> torch.Tensor:
        """The rest of the model from cached hidden states; equals forward() (tested)."""
        hidden = self._run_layers(hidden, attention_mask, n_lower, len(self.layers()))
        return self.head(masked_mean(hidden, attention_mask))

    def _run_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        ext = additive_mask(attention_mask, hidden.dtype)
        extra = {}
        if self.backbone.config.model_type == "mpnet":  # relative position bias, shared by all layers
            extra["position_bias"] = self.backbone.encoder.compute_position_bias(hidden)
        for layer in self.layers()[start:stop]:
            hidden = _first(layer(hidden, attention_mask=ext, **extra))
        return hidden

    def freeze_lower(self, n_lower: int) -> None:
        """Freeze embeddings and the first n_lower layers (generic: works for any backbone)."""
        if n_lower <= 0:
            return
        for name, p in self.backbone.named_parameters():
            if "embed" in name:
                p.requires_grad = False
        layers = self.layers() if self.supports_layer_cache else _find_layers(self.backbone)
        for layer in layers[:n_lower]:
            for p in layer.parameters():
                p.requires_grad = False

    # ---- persistence ----------------------------------------------------------------------
    def save(self, out_dir: str | Path, extra: dict | None = None) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out_dir / "backbone")
        torch.save(self.head.state_dict(), out_dir / HEAD_FILE)
        meta = {"backbone_dir": self.backbone_dir, "n_outputs": self.n_outputs, **(extra or {})}
        (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> tuple["LengthPredictor", dict]:
        ckpt_dir = Path(ckpt_dir)
        meta = json.loads((ckpt_dir / CONFIG_FILE).read_text())
        model = cls(ckpt_dir / "backbone", n_outputs=meta["n_outputs"])
        model.head.load_state_dict(torch.load(ckpt_dir / HEAD_FILE))
        return model.eval(), meta


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _find_layers(backbone: nn.Module) -> nn.ModuleList:
    """The transformer block list of common encoders/decoders (BERT, OPT, GPT-2, Llama...)."""
    for path in ("encoder.layer", "decoder.layers", "layers", "h", "transformer.h"):
        obj = backbone
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError("cannot find the layer list of this backbone to freeze")
