"""Knowledge-distillation terms (teacher -> student), each a plain function of student and teacher tensors.

CleanerS (Wang et al., CVPR 2023):

- ``feature_mse_loss`` (KD-T): mean squared difference of two feature volumes, over every voxel and channel
  (unmasked, as the official code);
- ``class_centre_kd_losses`` (KD-SC, KD-SA): per sample, over the voxels V with label_weight > 0 and label != 255,
  class centres in logit space (mean logits of V's voxels of each class present, empty excluded), computed with
  the ground truth for teacher and student alike; KD-SC = mean over classes of KL(softmax(teacher centre / T) ||
  softmax(student centre / T)) * T^2; KD-SA = mean over V x classes of the squared difference of the cosine
  similarities between each voxel's logits and each class centre. Both are averaged over the batch.

The teacher's tensors should come without gradients (the distillation hook runs the teacher under no_grad).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssc_core.types import IGNORE_LABEL


def feature_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of (student - teacher)^2 over all elements; both (B, C, ...) of one shape."""
    if student.shape != teacher.shape:
        raise ValueError(f"feature shapes differ: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    return F.mse_loss(student.float(), teacher.float())


def class_centre_kd_losses(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                           label_weight: torch.Tensor, temperature: float = 1.0,
                           ignore_index: int = IGNORE_LABEL) -> tuple[torch.Tensor, torch.Tensor]:
    """(KD-SC, KD-SA) scalars (module docstring). Logits (B, C, X, Y, Z) float; target (B, X, Y, Z) int64;
    label_weight (B, X, Y, Z) (> 0 = voxel used). A sample without a non-empty class contributes 0."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    b, c = student_logits.shape[:2]
    zero = student_logits.sum() * 0.0
    centre_kl, affinity = zero, zero
    for i in range(b):
        used = ((label_weight[i] > 0) & (target[i] != ignore_index)).reshape(-1)
        labels = target[i].reshape(-1)[used]
        classes = torch.unique(labels)
        classes = classes[classes != 0]
        if classes.numel() == 0:
            continue
        ys = student_logits[i].reshape(c, -1)[:, used].t().float()
        yt = teacher_logits[i].reshape(c, -1)[:, used].t().float()
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
