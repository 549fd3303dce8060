"""ACT: Action Chunking with Transformers (Zhao et al. 2023), the whole model in one file.

Observation side: one ResNet-18 shared by every camera -> 1x1 conv to hidden_dim -> image tokens with 2D sine
positions; a latent token and a qpos token with learned positions; a transformer encoder over
[latent, qpos, image tokens]; a decoder whose chunk_size learned queries read that memory; a linear action head.
Training side: a CVAE encoder over [cls, qpos, action chunk] gives the latent's mean and log-variance; the loss is
L1 on the non-padded actions + kl_weight * KL(q(z|a, qpos) || N(0, I)). At inference the latent is zero (the prior
mean).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from policies.base import (
    ImageNormalizer,
    check_inputs,
    check_targets,
    freeze_if_unused,
    masked_l1,
    random_shift,
    split_param_groups,
)
from policies.config import PolicyConfig
from policies.resnet import ResNet18, resnet18_backbone
from policies.transformer import Decoder, Encoder, sine_grid, sine_table


class ACTPolicy(nn.Module):
    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        d = c.hidden_dim
        n_cams = len(c.camera_names)

        # Images (absent for a state-only policy).
        self.backbone: ResNet18 | None = resnet18_backbone(c.backbone_norm) if n_cams else None
        self.normalize_images = ImageNormalizer()
        self.input_proj = nn.Conv2d(ResNet18.channels, d, kernel_size=1) if n_cams else None
        # Every camera gets the same sine grid; the original ACT leaves cameras to be told apart by content alone.
        # A learned per-camera offset on their positions costs n_cams * d parameters and removes the ambiguity.
        self.camera_embed = nn.Embedding(n_cams, d) if n_cams else None

        # Observation encoder and action decoder.
        self.qpos_proj = nn.Linear(c.state_dim, d)
        self.latent_proj = nn.Linear(c.latent_dim, d)
        self.token_pos = nn.Embedding(2, d)  # learned positions of the latent and qpos tokens
        self.encoder = Encoder(c.enc_layers, d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
        self.decoder = Decoder(c.dec_layers, d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
        self.queries = nn.Embedding(c.chunk_size, d)
        self.action_head = nn.Linear(d, c.action_dim)

        # CVAE encoder: [cls, qpos, a_1..a_chunk] with fixed 1D sine positions.
        self.cvae_cls = nn.Embedding(1, d)
        self.cvae_qpos_proj = nn.Linear(c.state_dim, d)
        self.cvae_action_proj = nn.Linear(c.action_dim, d)
        self.cvae_encoder = Encoder(c.enc_layers, d, c.nheads, c.dim_feedforward, c.dropout, c.pre_norm)
        self.cvae_out = nn.Linear(d, 2 * c.latent_dim)  # mean and log-variance
        self.register_buffer("cvae_pos", sine_table(c.chunk_size + 2, d)[None], persistent=False)

        freeze_if_unused(self.backbone, c)

    # -- the shared policy interface --------------------------------------------------------------------------

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Training loss on a batch (see policies.base for the layout) and its parts as floats."""
        qpos, action, is_pad = batch["qpos"], batch["action"], batch["is_pad"]
        images = check_inputs(self.config, qpos, batch.get("images"))
        check_targets(self.config, action, is_pad, qpos.shape[0])
        mu, logvar = self._posterior(qpos, action, is_pad)
        # Sample while training; the posterior mean for a validation loss in eval mode.
        latent = mu + (0.5 * logvar).exp() * torch.randn_like(mu) if self.training else mu
        pred = self._decode(qpos, images, latent)
        l1 = masked_l1(pred, action, is_pad)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()
        loss = l1 + self.config.kl_weight * kl
        return loss, {"l1": l1.item(), "kl": kl.item(), "loss": loss.item()}

    @torch.no_grad()
    def predict(self, qpos: Tensor, images: Tensor | None = None) -> Tensor:
        """(B, chunk_size, action_dim) normalized actions with the latent at zero, in eval behaviour (no dropout)."""
        images = check_inputs(self.config, qpos, images)
        was_training = self.training
        self.eval()
        try:
            latent = qpos.new_zeros(qpos.shape[0], self.config.latent_dim)
            return self._decode(qpos, images, latent)
        finally:
            self.train(was_training)

    def param_groups(self) -> list[dict]:
        return split_param_groups(self, self.backbone, self.config)

    # -- the model --------------------------------------------------------------------------------------------

    def _posterior(self, qpos: Tensor, action: Tensor, is_pad: Tensor) -> tuple[Tensor, Tensor]:
        b = qpos.shape[0]
        tokens = torch.cat([self.cvae_cls.weight.expand(b, 1, -1), self.cvae_qpos_proj(qpos)[:, None],
                            self.cvae_action_proj(action)], dim=1)
        pad = torch.cat([is_pad.new_zeros(b, 2), is_pad], dim=1)  # cls and qpos are never padding
        out = self.cvae_encoder(tokens, self.cvae_pos, pad)
        mu, logvar = self.cvae_out(out[:, 0]).chunk(2, dim=1)
        return mu, logvar

    def _decode(self, qpos: Tensor, images: Tensor | None, latent: Tensor) -> Tensor:
        b = qpos.shape[0]
        tokens = [self.latent_proj(latent)[:, None], self.qpos_proj(qpos)[:, None]]
        pos = [self.token_pos.weight[None].expand(b, -1, -1)]
        if images is not None:
            image_tokens, image_pos = self._image_tokens(images)
            tokens.append(image_tokens)
            pos.append(image_pos)
        memory_pos = torch.cat(pos, dim=1)
        memory = self.encoder(torch.cat(tokens, dim=1), memory_pos)
        query_pos = self.queries.weight[None]
        out = self.decoder(torch.zeros_like(query_pos).expand(b, -1, -1), query_pos, memory, memory_pos)
        return self.action_head(out)

    def _image_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(B, n_cams, 3, H, W) -> tokens and positions (B, n_cams*h*w, D): all cameras in one backbone pass."""
        assert self.backbone is not None and self.input_proj is not None and self.camera_embed is not None
        b, n_cams = images.shape[:2]
        if self.training:
            images = random_shift(images, self.config.image_shift)
        feats = self.input_proj(self.backbone(self.normalize_images(images.flatten(0, 1))))  # (B*n, D, h, w)
        d, h, w = feats.shape[1:]
        tokens = feats.view(b, n_cams, d, h * w).transpose(2, 3).reshape(b, n_cams * h * w, d)
        grid = sine_grid(h, w, d).to(feats)  # (h*w, D)
        pos = grid[None] + self.camera_embed.weight[:, None]  # (n_cams, h*w, D)
        return tokens, pos.reshape(1, n_cams * h * w, d).expand(b, -1, -1)
