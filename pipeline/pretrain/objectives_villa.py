"""VILLA: adversarial training in the embedding space (FreeLB-style), over MLM and ITM.

Why here and not in the loop: the objective gets the model, and every encoder exposes
`embed(batch)` and `encode(emb, batch)`, so the attack is K extra `encode` passes on perturbed
embeddings inside the ordinary forward; the loop, DDP and gradient accumulation are unchanged.

Per modality (VILLA perturbs text and regions separately), starting from a small random delta:
each of K steps scores the perturbed input (MLM + ITM cross-entropy plus the symmetric KL between
the clean and the perturbed predictions), keeps that loss for the parameters' gradient (FreeLB
averages the K steps' gradients), then moves delta up its normalised gradient and projects it
back into the ball ||delta||_F <= eps of each sample. The returned loss is the mean over steps
and modalities; the clean MLM/ITM losses are the `mlm`/`itm` tasks' own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from laitkit.pipeline.pretrain.masking import IGNORE
from laitkit.pipeline.pretrain.model import Embedded, EncoderOutput, ModelConfig
from laitkit.pipeline.pretrain.objectives_base import Objective

if TYPE_CHECKING:
    from laitkit.pipeline.pretrain.model import PretrainModel


def _sym_kl(clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_adv) + KL(p_adv || p_clean), the clean side a constant (VILLA's term)."""
    lc, la = F.log_softmax(clean.detach().float(), -1), F.log_softmax(adv.float(), -1)
    return F.kl_div(la, lc, log_target=True, reduction="batchmean") + F.kl_div(
        lc, la, log_target=True, reduction="batchmean"
    )


def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale each sample's perturbation into the Frobenius ball of radius `eps`."""
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / norm).clamp(max=1.0).view(-1, *[1] * (delta.dim() - 1))


class VILLA(Objective):
    name = "villa"

    def __init__(self, cfg: ModelConfig, *, eps: float = 1.0, steps: int = 2, step_size: float = 0.3,
                 init_mag: float = 0.1, kl_weight: float = 1.0) -> None:
        super().__init__(cfg)
        self.eps, self.steps, self.step_size, self.init_mag, self.kl_weight = eps, steps, step_size, init_mag, kl_weight

    def _task(self, model: PretrainModel, out: EncoderOutput, batch: dict, clean: EncoderOutput) -> torch.Tensor:
        """MLM + ITM cross-entropy of `out`, plus the KL term against the clean pass `clean`."""
        total = out.text.new_zeros(())
        labels = batch["mlm_labels"][:, : out.text.shape[1]]
        sel = labels != IGNORE
        if sel.any():
            logits = model.heads.token(out.text[sel])
            total = total + F.cross_entropy(logits.float(), labels[sel])
            total = total + self.kl_weight * _sym_kl(model.heads.token(clean.text[sel]), logits)
        itm = batch["itm_labels"]
        sel = itm != IGNORE
        if sel.any():
            logits = model.heads.itm(out.pooled[sel])
            total = total + F.cross_entropy(logits.float(), itm[sel])
            total = total + self.kl_weight * _sym_kl(model.heads.itm(clean.pooled[sel]), logits)
        return total

    def attack(self, model: PretrainModel, batch: dict, clean: EncoderOutput, modality: str) -> list[tuple]:
        """[(delta, loss)] for each ascent step on `modality` ("text" or "regions")."""
        emb = model.encoder.embed(batch)
        base = getattr(emb, modality)
        valid = (batch["text_mask"][:, : base.shape[1]] if modality == "text" else batch["region_mask"]).to(base.dtype)
        noise = torch.empty_like(base).uniform_(-1.0, 1.0) * valid[..., None]
        delta = project(noise * self.init_mag, self.init_mag).detach().requires_grad_(True)
        steps = []
        for _ in range(self.steps):
            moved = Embedded(text=emb.text, regions=emb.regions)
            setattr(moved, modality, base + delta)
            loss = self._task(model, model.encoder.encode(moved, batch), batch, clean)
            steps.append((delta, loss))
            if not loss.requires_grad:
                break
            (grad,) = torch.autograd.grad(loss, delta, retain_graph=True)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
            delta = project(delta.detach() + self.step_size * grad / norm * valid[..., None], self.eps)
            delta = delta.detach().requires_grad_(True)
        return steps

    def loss(self, model: PretrainModel, out: EncoderOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if "mlm_labels" not in batch or "itm_labels" not in batch:
            return None
        if not ((batch["mlm_labels"] != IGNORE).any() or (batch["itm_labels"] != IGNORE).any()):
            return None
        losses = [loss for modality in ("text", "regions") for _, loss in self.attack(model, batch, out, modality)]
        return torch.stack(losses).mean()
