"""Two-way key rules between an official state dict and ours, with the tensor re-layouts some keys need.

A rule pairs an official key pattern with ours, e.g. ``pts_bbox_head.sdb.aspp.aspp_{i}.{t}`` <->
``sdb.aspp.branches.{i}.{t}``. Placeholders: ``{i}``, ``{j}``, ``{n}`` match digits, ``{t}`` a parameter or
buffer name (``weight``, ``running_mean``, ...), ``{rest}`` any dotted tail. A rule whose ours is None drops the
key (a layer the official model builds but never runs) and says why. A ``Relayout`` converts the tensor both
ways. The first matching rule wins, so specific rules come before general ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

_PLACEHOLDERS = {"i": r"\d+", "j": r"\d+", "n": r"\d+", "t": r"[A-Za-z_]+", "rest": r".+"}


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    pattern = ""
    for index, part in enumerate(parts):
        pattern += re.escape(part) if index % 2 == 0 else f"(?P<{part}>{_PLACEHOLDERS[part]})"
    return re.compile(pattern + r"\Z")


@dataclass(frozen=True)
class Relayout:
    """A tensor re-layout: ``to_ours`` (official -> ours) and ``to_official`` (its inverse), with a name."""

    name: str
    to_ours: Callable[[torch.Tensor], torch.Tensor]
    to_official: Callable[[torch.Tensor], torch.Tensor]


class KeyRule:
    """One official <-> ours key pattern pair (see the module docstring); ``ours=None`` drops the key with
    ``reason``; ``relayout`` converts the tensor."""

    def __init__(self, official: str, ours: str | None, relayout: Relayout | None = None, reason: str = "") -> None:
        self.official, self.ours, self.relayout, self.reason = official, ours, relayout, reason
        self._official_re = _compile(official)
        self._ours_re = _compile(ours) if ours is not None else None

    def match_official(self, key: str) -> dict[str, str] | None:
        """The placeholder values when ``key`` fits the official pattern, else None."""
        m = self._official_re.match(key)
        return m.groupdict() if m else None

    def match_ours(self, key: str) -> dict[str, str] | None:
        """The placeholder values when ``key`` fits our pattern, else None (always None for drop rules)."""
        m = self._ours_re.match(key) if self._ours_re is not None else None
        return m.groupdict() if m else None


@dataclass
class MappedState:
    """A converted state dict, the source keys dropped on purpose (key -> reason), and source keys no rule
    matched."""

    state: dict[str, torch.Tensor]
    dropped: dict[str, str]
    unmatched: list[str]


class KeyMap:
    """An ordered list of KeyRules, applied in either direction."""

    def __init__(self, rules: list[KeyRule]) -> None:
        self.rules = list(rules)

    def to_ours(self, official: dict[str, torch.Tensor]) -> MappedState:
        """Official state dict -> ours (tensors re-laid out, contiguous)."""
        out, dropped, unmatched = {}, {}, []
        for key, tensor in official.items():
            for rule in self.rules:
                values = rule.match_official(key)
                if values is None:
                    continue
                if rule.ours is None:
                    dropped[key] = rule.reason
                else:
                    converted = rule.relayout.to_ours(tensor) if rule.relayout else tensor
                    out[rule.ours.format(**values)] = converted.contiguous()
                break
            else:
                unmatched.append(key)
        return MappedState(out, dropped, sorted(unmatched))

    def to_official(self, ours: dict[str, torch.Tensor]) -> MappedState:
        """Our state dict -> the official layout (the inverse of ``to_ours``; dropped layers are not produced)."""
        out, unmatched = {}, []
        for key, tensor in ours.items():
            for rule in self.rules:
                values = rule.match_ours(key)
                if values is None:
                    continue
                converted = rule.relayout.to_official(tensor) if rule.relayout else tensor
                out[rule.official.format(**values)] = converted.contiguous()
                break
            else:
                unmatched.append(key)
        return MappedState(out, {}, sorted(unmatched))
