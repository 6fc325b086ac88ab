"""Training losses for multi-ACCDOA outputs ``(B, T, 3, 3, C)`` against ADPIT targets ``(B, T, 6, 4, C)``.

With distance (``av_seld.targets``) the output is ``(B, T, 3, 4, C)`` and the target ``(B, T, 6, 5, C)``: each track
gains its distance (in units of ``DISTANCE_SCALE_M``), and every squared error below gains a distance term that counts
only where the matched target is active (an inactive track has no distance to learn).

Every loss is two steps: a *matcher* picks, per frame and class, which reference goes to which output track (without
gradient), then an *objective* compares the output with that matched target ``(B, T, 3, 3, C)``.

Matchers:
- ``adpit``: the 13 ADPIT permutations of the dummy tracks (A0A0A0; six of B0/B1; six of C0/C1/C2, each padded
  with the other groups as the DCASE2023 baseline does); the one with the smallest MSE wins.
- ``hungarian``: the assignment of references to output tracks with the smallest total angular distance, the
  assignment the metric uses; unmatched output tracks get a zero (inactive) target.

Objectives:
- ``mse``: mean squared error over every track, axis and class (with the ``adpit`` matcher this is exactly the
  baseline's ``MSELoss_ADPIT``).
- ``activity``: a focal loss on the activity read from each track's vector length, plus a direction loss
  ``1 − cos`` only on the tracks whose target is active (and, with distance, ``distance_weight`` times the squared
  distance error averaged over those tracks).

:func:`build_loss` maps a name (``adpit``, ``adpit_activity``, ``hungarian``, ``hungarian_activity``) to a loss.
:class:`DistillationLoss` adds a frozen teacher's outputs (and optionally its tokens) as extra targets.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from av_seld.geometry import angular_distance_xyz_deg
from av_seld.targets import adpit_to_tracks

# Dummy tracks: A0 = 0, B0 = 1, B1 = 2, C0 = 3, C1 = 4, C2 = 5.
_A = (0, 0, 0)
_B = ((1, 1, 2), (1, 2, 1), (1, 2, 2), (2, 1, 1), (2, 1, 2), (2, 2, 1))
_C = tuple(itertools.permutations((3, 4, 5)))
_B_CANONICAL, _C_CANONICAL = _B[0], _C[0]
# Each permutation is padded with the canonical forms of the two other groups (only one group is non-zero per frame
# and class), so that a permutation of an empty group never asks the output to be zero.
ADPIT_PERMUTATIONS = torch.tensor([_A, *_B, *_C])  # (13, 3)
ADPIT_PADDING = torch.tensor(
    [(_B_CANONICAL, _C_CANONICAL)] + [(_A, _C_CANONICAL)] * 6 + [(_A, _B_CANONICAL)] * 6)  # (13, 2, 3)
_TRACK_PERMUTATIONS = torch.tensor(list(itertools.permutations(range(3))))  # (6, 3)


def _check_shapes(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.dim() != 5 or output.shape[2] != 3 or output.shape[3] not in (3, 4):
        raise ValueError(f"output must be (B, T, 3, 3, C), or (B, T, 3, 4, C) with distance, got "
                         f"{tuple(output.shape)}")
    rows = output.shape[3] + 1
    expected = (*output.shape[:2], 6, rows, output.shape[-1])
    if tuple(target.shape) != expected:
        if target.dim() == 5 and target.shape[3] in (4, 5) and target.shape[3] != rows:
            has, lacks = ("output", "target") if rows == 5 else ("target", "output")
            raise ValueError(f"the {has} has distances and the {lacks} has none: output {tuple(output.shape)}, "
                             f"ADPIT target {tuple(target.shape)} (model.params.distance and the targets must agree)")
        raise ValueError(f"target must be ADPIT (B, T, 6, {rows}, C) = {expected}, got {tuple(target.shape)}")


def masked_square_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise squared error of multi-ACCDOA ``(..., 3 tracks, 3 or 4, C)`` tensors (broadcast); with distance
    (4 rows) the distance error counts only where the target's track is active (its vector longer than 0.5)."""
    square = (output - target).square()
    if square.shape[-2] == 3:
        return square
    active = target[..., :3, :].square().sum(dim=-2, keepdim=True) > 0.25  # (..., 3, 1, C)
    return torch.cat([square[..., :3, :], square[..., 3:, :] * active], dim=-2)


def adpit_candidates(target: torch.Tensor) -> torch.Tensor:
    """The 13 ADPIT multi-ACCDOA targets of an ADPIT target ``(B, T, 6, 4, C)``: ``(B, T, 13, 3, 3, C)`` (with
    distance ``(B, T, 6, 5, C)`` → ``(B, T, 13, 3, 4, C)``)."""
    dummy = target[..., 0:1, :] * target[..., 1:, :]  # (B, T, 6, 3 or 4, C) activity-weighted vectors
    perms = ADPIT_PERMUTATIONS.to(target.device)
    pads = ADPIT_PADDING.to(target.device)
    return dummy[:, :, perms] + dummy[:, :, pads[:, 0]] + dummy[:, :, pads[:, 1]]


def match_adpit(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Matched target ``(B, T, 3, R, C)`` (R = 3, or 4 with distance): per frame and class, the ADPIT permutation with
    the smallest MSE (:func:`masked_square_error`)."""
    candidates = adpit_candidates(target)  # (B, T, 13, 3, R, C)
    with torch.no_grad():
        errors = masked_square_error(output.detach().unsqueeze(2), candidates).mean(dim=(3, 4))  # (B, T, 13, C)
        best = errors.argmin(dim=2)  # (B, T, C)
    index = best[:, :, None, None, None, :].expand(-1, -1, 1, *candidates.shape[3:5], -1)
    return candidates.gather(2, index).squeeze(2)


def hungarian_assignment(cost: torch.Tensor, ref_active: torch.Tensor) -> torch.Tensor:
    """Optimal assignment of up to 3 references to 3 output tracks.

    ``cost`` ``(..., 3 outputs, 3 refs)``; ``ref_active`` ``(..., 3)`` bool. Returns ``(..., 3)``: the output track
    of each reference. With three tracks, trying all 6 permutations is exact (the same minimum total cost as
    ``scipy.optimize.linear_sum_assignment``) and runs batched on any device.
    """
    perms = _TRACK_PERMUTATIONS.to(cost.device)  # (6, 3): perms[p, ref] = output track
    refs = torch.arange(3, device=cost.device)
    per_perm = cost[..., perms, refs]  # (..., 6, 3): cost[..., perms[p, j], j]
    total = (per_perm * ref_active.unsqueeze(-2)).sum(-1)  # (..., 6)
    return perms[total.argmin(-1)]


def match_hungarian(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Matched target ``(B, T, 3, R, C)``: each reference (its distance too, R = 4) on the output track the
    angular-distance assignment gives."""
    activity, vectors = adpit_to_tracks(target)  # (B, T, 3, C), (B, T, 3, R, C)
    active = activity > 0.5
    with torch.no_grad():
        out_v = output.detach()[:, :, :, :3].permute(0, 1, 4, 2, 3)  # (B, T, C, 3 tracks, 3 xyz)
        ref_v = vectors[:, :, :, :3].permute(0, 1, 4, 2, 3)
        cost = angular_distance_xyz_deg(out_v.unsqueeze(-2), ref_v.unsqueeze(-3))  # (B, T, C, 3 out, 3 ref)
        track_of_ref = hungarian_assignment(cost, active.permute(0, 1, 3, 2))  # (B, T, C, 3)
    ref_vectors = (vectors * active.unsqueeze(-2)).permute(0, 1, 4, 2, 3)  # (B, T, C, 3 refs, R)
    # Distinct refs go to distinct tracks, so scattering never overwrites; inactive refs scatter zeros.
    index = track_of_ref[..., None].expand(-1, -1, -1, -1, ref_vectors.shape[-1])
    matched_c = torch.zeros_like(ref_vectors).scatter(3, index, ref_vectors)
    return matched_c.permute(0, 1, 3, 4, 2)


def mse_objective(output: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """Mean of :func:`masked_square_error` over every track, row and class (the DCASE baselines' MSE)."""
    return masked_square_error(output, matched).mean()


class ActivityDirectionObjective(nn.Module):
    """Focal activity loss on track vector lengths + ``1 − cos`` direction loss on active targets.

    ``activity_link="scaled"`` (for tanh heads): activity logit = ``logit_scale · (|v| − 0.5)``, so the decision
    boundary is the usual 0.5 threshold on the vector length and the gradient never vanishes for lengths above 1
    (tanh outputs reach √3). ``activity_link="probability"`` (for the ``gated`` head, whose lengths are sigmoid
    probabilities): the length itself is the activity probability, so the loss is the plain binary cross-entropy of
    the head's activity logit. Focal weighting ``(1 − p_t)^gamma`` (Lin et al., 2017), with ``alpha`` weighting
    positives (None: no weighting). ``class_weights`` (C,) scales each class's activity term (scaled to mean 1;
    :func:`class_balanced_weights` makes them from label counts). ``distance_weight`` scales the squared distance
    error of the active tracks (outputs with distance only).
    """

    LINKS = ("scaled", "probability")

    def __init__(self, activity_weight: float = 1.0, direction_weight: float = 1.0, focal_gamma: float = 2.0,
                 focal_alpha: float | None = None, logit_scale: float = 10.0, activity_link: str = "scaled",
                 class_weights: list[float] | None = None, distance_weight: float = 1.0):
        super().__init__()
        if activity_link not in self.LINKS:
            raise ValueError(f"activity_link must be one of {list(self.LINKS)}, got {activity_link!r}")
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if weights.dim() != 1 or not bool((weights > 0).all()):
                raise ValueError(f"class_weights must be positive numbers, one per class, got {class_weights!r}")
            weights = weights / weights.mean()
        self.register_buffer("class_weights", weights)
        self.activity_link = activity_link
        self.activity_weight = activity_weight
        self.direction_weight = direction_weight
        self.distance_weight = distance_weight
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.logit_scale = logit_scale

    def forward(self, output: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
        distance, ref_distance = output[:, :, :, 3:], matched[:, :, :, 3:]  # (B, T, 3, 0 or 1, C)
        output, matched = output[:, :, :, :3], matched[:, :, :, :3]
        length = output.square().sum(dim=3).add(1e-12).sqrt()  # (B, T, 3, C)
        ref_length = matched.square().sum(dim=3).sqrt()
        active = (ref_length > 0.5).to(output.dtype)
        if self.activity_link == "scaled":
            logits = self.logit_scale * (length - 0.5)
        else:  # inverse sigmoid of the length, kept finite where the length reaches 0 or 1
            prob = length.clamp(1e-6, 1 - 1e-6)
            logits = torch.log(prob) - torch.log1p(-prob)
        ce = F.binary_cross_entropy_with_logits(logits, active, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * active + (1 - p) * (1 - active)
        focal = ce * (1 - p_t).pow(self.focal_gamma)
        if self.focal_alpha is not None:
            focal = focal * (self.focal_alpha * active + (1 - self.focal_alpha) * (1 - active))
        if self.class_weights is not None:
            if self.class_weights.numel() != focal.shape[-1]:
                raise ValueError(f"{self.class_weights.numel()} class weights for {focal.shape[-1]} classes")
            focal = focal * self.class_weights.to(focal.dtype)
        cos = (output * matched).sum(dim=3) / (length * ref_length.clamp_min(1e-6))
        direction = ((1 - cos) * active).sum() / active.sum().clamp_min(1.0)
        loss = self.activity_weight * focal.mean() + self.direction_weight * direction
        if distance.shape[3]:
            error = (distance - ref_distance).square().sum(dim=3)  # (B, T, 3, C)
            loss = loss + self.distance_weight * (error * active).sum() / active.sum().clamp_min(1.0)
        return loss


class MultiAccdoaLoss(nn.Module):
    """``loss(output (B, T, 3, 3, C), target (B, T, 6, 4, C)) -> scalar``: a matcher, then an objective (with
    distance: output (B, T, 3, 4, C), target (B, T, 6, 5, C))."""

    MATCHERS = {"adpit": match_adpit, "hungarian": match_hungarian}

    def __init__(self, matcher: str = "adpit", objective: str = "mse", **objective_kwargs):
        super().__init__()
        if matcher not in self.MATCHERS:
            raise ValueError(f"matcher must be one of {sorted(self.MATCHERS)}, got {matcher!r}")
        if objective == "mse":
            if objective_kwargs:
                raise TypeError(f"the mse objective takes no options, got {sorted(objective_kwargs)}")
            self.objective = mse_objective
        elif objective == "activity":
            self.objective = ActivityDirectionObjective(**objective_kwargs)
        else:
            raise ValueError(f"objective must be 'mse' or 'activity', got {objective!r}")
        self.matcher = matcher

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(output, target)
        target = target.to(output.dtype)
        return self.objective(output, self.MATCHERS[self.matcher](output, target))


def class_balanced_weights(active_frames, power: float = 0.5) -> list[float]:
    """Per-class weights from the number of active label frames of each class in the training split:
    ``(count / mean count) ** -power``, scaled to mean 1; a class with no frame gets the largest weight of the
    others (nothing to learn from, nothing to over-weight)."""
    counts = torch.as_tensor(active_frames, dtype=torch.float64)
    present = counts > 0
    if not bool(present.any()):
        return [1.0] * counts.numel()
    weights = torch.ones_like(counts)
    weights[present] = (counts[present] / counts[present].mean()).pow(-power)
    weights[~present] = weights[present].max()
    return (weights / weights.mean()).tolist()


LOSSES = {
    "adpit": ("adpit", "mse"),
    "adpit_activity": ("adpit", "activity"),
    "hungarian": ("hungarian", "mse"),
    "hungarian_activity": ("hungarian", "activity"),
}


def available_losses() -> list[str]:
    return sorted(LOSSES)


def build_loss(name: str, **kwargs) -> MultiAccdoaLoss:
    """Loss by name (see :data:`LOSSES`); ``kwargs`` go to the activity objective (weights, focal gamma/alpha...)."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; available: {', '.join(available_losses())}")
    matcher, objective = LOSSES[name]
    return MultiAccdoaLoss(matcher, objective, **kwargs)


def adpit_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The DCASE2023 baseline ADPIT MSE: mean over (B, T, C) of the per-frame-and-class minimum over 13 permutations
    (with distance, the DCASE2024 baseline's, its distance error masked where inactive)."""
    _check_shapes(output, target)
    candidates = adpit_candidates(target.to(output.dtype))
    errors = masked_square_error(output.unsqueeze(2), candidates).mean(dim=(3, 4))  # (B, T, 13, C)
    return errors.min(dim=2).values.mean()


class DistillationLoss(nn.Module):
    """Student loss + ``weight_teacher`` · MSE(student output, teacher output)
    (+ ``weight_feature`` · MSE(projection(student tokens), teacher tokens)).

    The teacher reads the audio features and, when it is an audio-visual model, the visual inputs given as
    ``teacher_inputs`` (``frames``, ``visual_features``, ``visual_mask``; audio models ignore them).
    ``teacher_standardise``: ``(scale, shift)``, each (C, F), turning features standardised with the student's
    statistics into features standardised with the teacher's (``x · scale + shift``); None feeds them as they are.

    The teacher is frozen: no parameter requires grad, it always stays in eval mode (also after ``.train()``), and it
    runs under ``torch.no_grad()``. The projection (``Linear(student_dim, teacher.embed_dim)``, only when
    ``weight_feature > 0``) is trainable: give :meth:`trainable_parameters` to the optimizer with the student's.
    """

    def __init__(self, student_loss: nn.Module, teacher: nn.Module, weight_teacher: float = 1.0,
                 weight_feature: float = 0.0, student_dim: int | None = None,
                 teacher_standardise: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.student_loss = student_loss
        self.teacher = teacher
        scale, shift = (None, None) if teacher_standardise is None else teacher_standardise
        # (1, C, 1, F): broadcast over batch and time of (B, C, T, F) features; buffers follow .to(device)
        self.register_buffer("teacher_scale", None if scale is None else torch.as_tensor(scale).float()[None, :, None])
        self.register_buffer("teacher_shift", None if shift is None else torch.as_tensor(shift).float()[None, :, None])
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.weight_teacher = weight_teacher
        self.weight_feature = weight_feature
        self.projection: nn.Module | None = None
        if weight_feature > 0:
            if student_dim is None:
                raise ValueError("student_dim is needed for the feature loss (weight_feature > 0)")
            self.projection = nn.Linear(student_dim, int(teacher.embed_dim))

    def train(self, mode: bool = True) -> "DistillationLoss":
        super().train(mode)
        self.teacher.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def compute(self, student_output: torch.Tensor, target: torch.Tensor, features: torch.Tensor,
                student_tokens: torch.Tensor | None = None,
                teacher_inputs: dict | None = None) -> dict[str, torch.Tensor]:
        """Loss terms ``{"total", "student", "teacher", "feature"}``.

        ``student_output`` (B, T, 3, 3, C); ``target`` ADPIT (B, T, 6, 4, C); ``features``: the teacher's audio input;
        ``student_tokens`` (B, T, D_student), needed when ``weight_feature > 0``; ``teacher_inputs``: the visual
        keyword arguments of the model contract, for an audio-visual teacher.
        """
        self.teacher.eval()
        with torch.no_grad():
            if self.teacher_scale is not None:
                features = features * self.teacher_scale + self.teacher_shift
            teacher_tokens = self.teacher.tokens(features, **(teacher_inputs or {}))
            teacher_output = self.teacher.head(teacher_tokens)
        if teacher_output.shape != student_output.shape:
            raise ValueError(f"teacher output {tuple(teacher_output.shape)} and student output "
                             f"{tuple(student_output.shape)} differ")
        terms = {"student": self.student_loss(student_output, target),
                 "teacher": F.mse_loss(student_output, teacher_output)}
        if self.projection is not None:
            if student_tokens is None:
                raise ValueError("student_tokens are needed for the feature loss (weight_feature > 0)")
            terms["feature"] = F.mse_loss(self.projection(student_tokens), teacher_tokens)
        else:
            terms["feature"] = student_output.new_zeros(())
        terms["total"] = (terms["student"] + self.weight_teacher * terms["teacher"]
                          + self.weight_feature * terms["feature"])
        return terms

    def forward(self, student_output: torch.Tensor, target: torch.Tensor, features: torch.Tensor,
                student_tokens: torch.Tensor | None = None, teacher_inputs: dict | None = None) -> torch.Tensor:
        return self.compute(student_output, target, features, student_tokens, teacher_inputs)["total"]


__all__ = [
    "ADPIT_PERMUTATIONS", "ActivityDirectionObjective", "DistillationLoss", "LOSSES", "MultiAccdoaLoss",
    "adpit_candidates", "adpit_loss", "available_losses", "build_loss", "hungarian_assignment", "masked_square_error",
    "match_adpit", "match_hungarian", "mse_objective",
]
