"""Margin heads for identity classification on normalised embeddings (ArcFace, CosFace), in a registry."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HEADS = {}


def register_head(name: str):
    def add(cls: type) -> type:
        HEADS[name] = cls
        return cls
    return add


class MarginHead(nn.Module):
    """Cosine logits s*cos(theta) against one learned centre per identity, with a margin on the target."""

    def __init__(self, embedding_size, classes, s=64.0, m=0.5):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1, 1)
        target = cosine.gather(1, labels[:, None])
        logits = cosine.scatter(1, labels[:, None], self.target_logit(target))
        return F.cross_entropy(self.s * logits, labels)


@register_head("arcface")
class ArcFace(MarginHead):
    """cos(theta + m) on the target; past theta = pi - m, where that stops decreasing, the linear stand-in
    cos(theta) - m*sin(m) that InsightFace uses keeps the logit monotonic."""

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        sine = (1 - cosine ** 2).clamp(min=1e-9).sqrt()
        with_margin = cosine * math.cos(self.m) - sine * math.sin(self.m)
        return torch.where(cosine > math.cos(math.pi - self.m), with_margin, cosine - self.m * math.sin(self.m))


@register_head("cosface")
class CosFace(MarginHead):
    def __init__(self, embedding_size, classes, s=64.0, m=0.35):
        super().__init__(embedding_size, classes, s, m)

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        return cosine - self.m


def similarity_distillation(student_maps: list, teacher_maps: list) -> torch.Tensor:
    """Similarity-preserving distillation (Tung & Mori, 2019), averaged over layers: how alike the batch's
    images are to one another in the student's feature maps, against the same in the teacher's. It compares
    (batch x batch) matrices, so a pruned layer of any width is matched to its unpruned self."""
    total = 0
    for student, teacher in zip(student_maps, teacher_maps):
        s, t = student.flatten(1), teacher.detach().flatten(1)
        similarity_s, similarity_t = F.normalize(s @ s.T, dim=1), F.normalize(t @ t.T, dim=1)
        total = total + (similarity_s - similarity_t).pow(2).sum() / len(s) ** 2
    return total / max(1, len(student_maps))


def embedding_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 - cosine between the student's and the teacher's embeddings: what verification compares."""
    return (1 - F.cosine_similarity(student, teacher.detach(), dim=1)).mean()
