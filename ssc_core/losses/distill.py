"""Teacher -> student distillation terms, unweighted (the caller applies the ratios): L2COcc's (fact sheet §2.4) and
CleanerS's (§3.3). The Trainer runs them through ``ssc_core.training.distill.DistillationHook``.

Every function takes the student's tensors first and the teacher's second (the teacher's are used as targets and
never receive gradients here: they are detached), and returns a scalar that is exactly 0 when the student's
tensors equal the teacher's. Masks come from the labels: ``target`` (B, X, Y, Z) int64 train ids of the scene grid
or ``target_1_2`` of the 1:2 work grid, 255 = ignore, 0 = empty.

- ``prediction_kl_loss`` (PAD): KL(teacher || student) of the class distributions on non-empty, non-ignored
  voxels, with ``nn.KLDivLoss(reduction='mean')`` semantics per sample (the sum divided by voxels x classes), then
  averaged over the batch.
- ``feature_cosine_loss`` (the 17 "numeric" terms): 1 - cos along channels, averaged over masked locations, for
  every TPV plane feature (resized to the plane) and every voxel feature; the mean over the terms.
- ``relation_loss``: L1 between the cosine self-similarity matrices (HW x HW) of student and teacher plane
  features, summed over the planes.
- ``aggregator_kl_loss``: the PAD form on the TPV aggregator's four weight logits at non-empty work voxels.

CleanerS:

- ``feature_mse_loss`` (KD-T): mean squared difference of two feature volumes over every voxel and channel
  (unmasked, as the official code);
- ``class_centre_kd_losses`` (KD-SC, KD-SA): per sample, over the voxels V with label_weight > 0 and label != 255,
  class centres in logit space (mean logits of V's voxels of each class present, empty excluded), computed with
  the ground truth for teacher and student alike; KD-SC = mean over classes of KL(softmax(teacher centre / T) ||
  softmax(student centre / T)) * T^2; KD-SA = mean over V x classes of the squared difference of the cosine
  similarities between each voxel's logits and each class centre. Both are averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL


def _zero(*tensors: torch.Tensor) -> torch.Tensor:
    return sum(t.sum() * 0.0 for t in tensors)


def _check_pair(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise DataFormatError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ")


def occupied_mask(target: torch.Tensor, empty_index: int = 0, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """(B, ...) bool: labelled and not empty (target not in {empty_index, ignore_index})."""
    return (target != ignore_index) & (target != empty_index)


def masked_kl_mean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) over dim 1 with ``nn.KLDivLoss(reduction='mean')`` semantics per
    sample: the summed KL of the sample's masked locations divided by (locations x channels); the mean over the
    batch. Logits (B, C, *spatial), mask (B, *spatial) bool. A sample with an empty mask adds 0."""
    _check_pair(student_logits, teacher_logits, "KL distillation")
    if mask.shape != student_logits.shape[:1] + student_logits.shape[2:]:
        raise DataFormatError(f"KL distillation: mask {tuple(mask.shape)} does not fit logits "
                              f"{tuple(student_logits.shape)}")
    log_s = F.log_softmax(student_logits.float(), dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float(), dim=1)
    per_location = (log_t.exp() * (log_t - log_s)).sum(dim=1)  # (B, *spatial)
    channels = student_logits.shape[1]
    total = _zero(student_logits)
    for b in range(student_logits.shape[0]):
        m = mask[b]
        count = int(m.sum())
        if count:
            total = total + per_location[b][m].sum() / (count * channels)
    return total / student_logits.shape[0]


def prediction_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                       include_empty: bool = False) -> torch.Tensor:
    """PAD: ``masked_kl_mean`` of the scene logits (B, K, X, Y, Z) on voxels with target != 255 and, unless
    ``include_empty``, target != 0 (L2COcc's ``distill_kl_empty: False``)."""
    mask = target != IGNORE_LABEL if include_empty else occupied_mask(target)
    return masked_kl_mean(student_logits, teacher_logits, mask)


def aggregator_kl_loss(student_weights: torch.Tensor, teacher_weights: torch.Tensor,
                       target_1_2: torch.Tensor) -> torch.Tensor:
    """``masked_kl_mean`` of the TPV aggregator's weight logits (B, 4, X/2, Y/2, Z/2) on work voxels whose
    label is neither empty nor ignored."""
    return masked_kl_mean(student_weights, teacher_weights, occupied_mask(target_1_2))


def masked_cosine_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the locations where ``mask`` (B, *spatial) is true of 1 - cos(student, teacher) along dim 1 of
    (B, C, *spatial) features; 0 (connected to the graph) when the mask is empty."""
    _check_pair(student, teacher, "cosine distillation")
    if mask.shape != student.shape[:1] + student.shape[2:]:
        raise DataFormatError(f"cosine distillation: mask {tuple(mask.shape)} does not fit features "
                              f"{tuple(student.shape)}")
    if not bool(mask.any()):
        return _zero(student)
    cos = F.cosine_similarity(student.float(), teacher.detach().float(), dim=1)
    return (1.0 - cos[mask]).mean()


def tpv_plane_masks(target_1_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks of the three TPV planes from the work-grid labels (B, X, Y, Z): a plane cell is on when any voxel
    along the collapsed axis is non-empty (255 counts as empty). Returns xy (B, X, Y), yz (B, Y, Z), zx (B, X, Z)."""
    occupied = occupied_mask(target_1_2)
    return occupied.any(dim=3), occupied.any(dim=1), occupied.any(dim=2)


def feature_cosine_loss(
    student_planes: Sequence[Sequence[torch.Tensor]],
    teacher_planes: Sequence[Sequence[torch.Tensor]],
    student_volumes: Sequence[torch.Tensor],
    teacher_volumes: Sequence[torch.Tensor],
    target_1_2: torch.Tensor,
) -> torch.Tensor:
    """The mean of L2COcc's feature terms. ``*_planes``: for the planes xy, yz, zx in that order, a list of
    (B, C_i, h_i, w_i) features (Swin stages and FPN outputs), each bilinearly resized to its plane's size and
    masked by ``tpv_plane_masks``; ``*_volumes``: (B, C, X/2, Y/2, Z/2) voxel features (aggregated output, the
    3D features before the TPV network) masked by non-empty labels. With L2COcc's 3 x (3 + 2) + 2 features this
    is the mean of 17 terms."""
    if len(student_planes) != 3 or len(teacher_planes) != 3:
        raise DataFormatError("feature distillation needs the features of the three planes xy, yz, zx")
    if len(student_volumes) != len(teacher_volumes):
        raise DataFormatError("feature distillation: student and teacher give different numbers of volumes")
    masks = tpv_plane_masks(target_1_2)
    terms = []
    for plane_s, plane_t, mask in zip(student_planes, teacher_planes, masks):
        if len(plane_s) != len(plane_t):
            raise DataFormatError("feature distillation: student and teacher give different numbers of plane "
                                  "features")
        size = tuple(mask.shape[1:])
        for feat_s, feat_t in zip(plane_s, plane_t):
            terms.append(masked_cosine_loss(_resize(feat_s, size), _resize(feat_t, size), mask))
    occupied = occupied_mask(target_1_2)
    terms += [masked_cosine_loss(s, t, occupied) for s, t in zip(student_volumes, teacher_volumes)]
    if not terms:
        raise DataFormatError("feature distillation: no features given")
    return torch.stack(terms).mean()


def _resize(feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(feat.shape[2:]) == size:
        return feat
    return F.interpolate(feat, size=size, mode="bilinear", align_corners=False)


def self_similarity(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, HW, HW): cosine similarity of every pair of locations (features L2-normalised along C)."""
    flat = F.normalize(feat.float().flatten(2), dim=1)
    return flat.transpose(1, 2) @ flat


def relation_loss(student_planes: Sequence[torch.Tensor], teacher_planes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over planes of mean |S_student - S_teacher| where S is ``self_similarity`` of one (B, C, H, W) plane
    feature per plane (L2COcc: the first FPN output of xy, yz, zx). Unmasked."""
    if len(student_planes) != len(teacher_planes) or not student_planes:
        raise DataFormatError("relation distillation needs one feature per plane from student and teacher")
    total = _zero(*student_planes)
    for feat_s, feat_t in zip(student_planes, teacher_planes):
        _check_pair(feat_s, feat_t, "relation distillation")
        total = total + F.l1_loss(self_similarity(feat_s), self_similarity(feat_t.detach()))
    return total


def feature_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of (student - teacher)^2 over all elements; both (B, C, ...) of one shape."""
    _check_pair(student, teacher, "feature MSE distillation")
    return F.mse_loss(student.float(), teacher.detach().float())


def class_centre_kd_losses(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                           label_weight: torch.Tensor, temperature: float = 1.0,
                           ignore_index: int = IGNORE_LABEL) -> tuple[torch.Tensor, torch.Tensor]:
    """(KD-SC, KD-SA) scalars (module docstring). Logits (B, C, X, Y, Z) float; target (B, X, Y, Z) int64;
    label_weight (B, X, Y, Z) (> 0 = voxel used). A sample without a non-empty class contributes 0."""
    _check_pair(student_logits, teacher_logits, "class-centre distillation")
    b, c = student_logits.shape[:2]
    centre_kl = affinity = _zero(student_logits)
    for i in range(b):
        used = ((label_weight[i] > 0) & (target[i] != ignore_index)).reshape(-1)
        labels = target[i].reshape(-1)[used]
        classes = torch.unique(labels)
        classes = classes[classes != 0]
        if classes.numel() == 0:
            continue
        ys = student_logits[i].reshape(c, -1)[:, used].t().float()
        yt = teacher_logits[i].detach().reshape(c, -1)[:, used].t().float()
        member = (labels[:, None] == classes[None]).float()  # (V, K)
        count = member.sum(0)[:, None]
        centre_s, centre_t = member.t() @ ys / count, member.t() @ yt / count  # (K, C)
        log_p_s = F.log_softmax(centre_s / temperature, dim=1)
        log_p_t = F.log_softmax(centre_t / temperature, dim=1)
        centre_kl = centre_kl + (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean() * temperature**2
        sim_s = F.normalize(ys, dim=1, eps=1e-8) @ F.normalize(centre_s, dim=1, eps=1e-8).t()
        sim_t = F.normalize(yt, dim=1, eps=1e-8) @ F.normalize(centre_t, dim=1, eps=1e-8).t()
        affinity = affinity + F.mse_loss(sim_s, sim_t)
    return centre_kl / b, affinity / b
