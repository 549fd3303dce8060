"""ACT: Action Chunking with Transformers (Zhao et al. 2023), the whole model in one file.

Observation side: one ResNet-18 shared by every camera -> 1x1 conv to hidden_dim -> image tokens with 2D sine
positions; a latent token and a qpos token with learned positions; a transformer encoder over
[latent, qpos, image tokens]; a decoder whose chunk_size learned queries read that memory; a linear action head.
Training side: a CVAE encoder over [cls, qpos, action chunk] gives the latent's mean and log-variance; the loss is
L1 on the non-padded actions + kl_weight * KL(q(z|a, qpos) || N(0, I)). At inference the latent is zero (the prior
mean).

Deviations from the original code (tonyzhaozh/act: detr/models/{detr_vae,transformer,backbone,position_encoding}.py,
policy.py, imitate_episodes.py, utils.py). "Kept": on purpose; "gap": to fix later. The README's results were
trained with this code, so none is changed without retraining; tests/test_policy_golden.py pins the numbers.

Model
- Initialisation (gap): the original runs xavier_uniform_ over every >1-dim parameter of its observation
  encoder + decoder (DETR's Transformer._reset_parameters); here they keep PyTorch's defaults. Attention in_proj
  is xavier either way; the FFN linears and attention out_proj differ (kaiming-uniform here). Outside that
  Transformer (CVAE encoder, projections, embeddings, heads) both use the defaults.
- Decoder depth (kept): all dec_layers run and the last one's normed output is read. The original returned every
  layer's output and took index 0, so only the first of its 7 layers mattered. dec_layers=1 reproduces it.
- No is_pad head (kept): the original computes Linear(d, 1) padding logits and never uses them in the loss.
- Dimensions (kept): state_dim, action_dim and latent_dim come from the config; the original hard-codes 14, 14, 32.
- Camera positions (kept): every camera gets the same 2D sine grid, as in the original (it concatenates the
  cameras' feature maps along the width, with each camera's grid computed alone), plus a learned per-camera
  offset (camera_embed, N(0, 1) init) so cameras can be told apart by position.
- Token order (no effect): image tokens are camera-major here; the original's are row-major over the width-
  concatenated map. Attention does not depend on the order when each token keeps its own position.
- Sine channel layout (kept, not weight-compatible): the 2D image grid and the CVAE's 1D table use the original's
  frequencies, and the grid uses its (0, 2*pi] scaling (the original also adds an eps of 1e-6). But here each
  frequency's sines come as one block, then the cosines; the original interleaves sin/cos channel by channel.
  That is a fixed permutation of the position channels only, so original checkpoints do not load here.
- Learned positions (same): the latent and qpos tokens get a learned (2, d) embedding, and the decoder's chunk_size
  learned queries start from a zero target. The CVAE's sine table is a non-persistent buffer here; it is saved
  in the original's state dict.
- Backbone (gap in the `paper` preset): the original loads torchvision's ImageNet resnet18 under frozen batch
  norm. Here the ResNet starts random (kaiming) unless `--pretrained-backbone imagenet` (the same torchvision
  file, downloaded once and checked by hash; policies/pretrained.py) or a local file is given, and with frozen
  batch norm at identity statistics that random network has no normalization. Give `imagenet` with `paper`.
  backbone_norm="group" (trained GroupNorm) and backbone="convnet" (five convolutions, the same feature grid at a
  fraction of the cost; policies/convnet.py) are tandem-only options. One shared backbone over all cameras,
  layer4 features, as the original. All cameras go in one batched pass, which gives the same numbers.
- Freezing (kept): lr_backbone=0 sets requires_grad off. The original builds a train_backbone flag, leaves it
  unused and trains the backbone whenever it is in the optimizer.
- Augmentation (kept, off by default): image_shift (DrQ random shift) in training; the original has none.
  Images are resized to config.image_size (the `paper` preset's 480x640 is ALOHA's native size, so no resize).
- Image normalization (same): 0..1 images, ImageNet mean/std inside the policy.

Loss and latent
- L1 (kept): the mean over the valid (unpadded) steps only. The original multiplies by ~is_pad and then averages
  over all B*chunk*action_dim entries, so its L1 shrinks with the padded fraction. That makes its L1 : KL
  balance (kl_weight) depend on how much of a batch is padding; here L1 >= the original's on padded batches.
- KL (same): -0.5 * (1 + logvar - mu^2 - exp(logvar)), summed over latent dims and averaged over the batch
  (the original's total_kld), weighted by kl_weight.
- Validation latent (kept): in eval mode the loss uses the posterior mean. The original samples z whenever actions
  are given, validation included. Training samples here as well; inference uses z = 0 in both.

Data and training (policies/dataset.py, policies/train.py)
- Sampling (kept): uniform over all steps of all training episodes: each frame once per epoch, shuffled, or with
  replacement in proportion to weights when correction episodes are weighted. The original draws one random
  step per episode per item (an "epoch" is one pass over the episodes), which weights episodes equally whatever
  their length.
- Real-robot action offset (kept for tandem's recordings; a gap for real episodes recorded by ALOHA's own
  scripts): for non-sim episodes the original starts the action chunk at t-1 (its "hack, to make timesteps more
  aligned"): ALOHA's recorder pairs the observation taken after sending action t-1 with the leaders' action t,
  read later. tandem's loop (robot/loop.py) reads followers and leaders in the same parallel read, so qpos[t] and
  action[t] are one instant and the chunk starts at t. Real episodes recorded by ALOHA's scripts keep ALOHA's
  pairing; for them the original's offset would still apply, and it is not applied here.
- Normalization stats (kept): computed over the training episodes only, with the population std. The original
  uses all episodes, validation included, and the unbiased std. Both floor the std at 1e-2.
- Optimizer (same core): AdamW; the backbone group at lr_backbone, the rest at lr; weight_decay 1e-4 on both,
  biases and norms included. The `paper` preset matches imitate_episodes (lr 1e-5, lr_backbone 1e-5, batch 8).
  Added (kept): linear warm-up then cosine decay (the original holds the lr constant), gradient clipping at norm
  1.0 (the original does not clip), frozen parameters left out of the optimizer, the fused AdamW kernel (the
  same update), and bf16 autocast on CUDA, or on the CPU with --precision bf16 (the original trains in fp32).
  Training counts steps rather than epochs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from policies.backbones import image_backbone
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
from policies.convnet import ConvNet
from policies.resnet import ResNet18
from policies.transformer import Decoder, Encoder, sine_grid, sine_table


class ACTPolicy(nn.Module):
    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        d = c.hidden_dim
        n_cams = len(c.camera_names)

        # Images (absent for a state-only policy).
        self.backbone: ResNet18 | ConvNet | None = image_backbone(c) if n_cams else None
        self.normalize_images = ImageNormalizer()
        self.input_proj = nn.Conv2d(self.backbone.channels, d, kernel_size=1) if n_cams else None
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

    @torch.no_grad()
    def reconstruct(self, qpos: Tensor, images: Tensor | None, action: Tensor, is_pad: Tensor) -> Tensor:
        """predict() with the latent at the posterior mean of the recorded `action` chunk instead of zero: what the
        validation loss scores. Equal to predict() when the latent carries nothing (bench/open_loop_error.py)."""
        images = check_inputs(self.config, qpos, images)
        was_training = self.training
        self.eval()
        try:
            mu, _ = self._posterior(qpos, action, is_pad)
            return self._decode(qpos, images, mu)
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
