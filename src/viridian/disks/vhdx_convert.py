"""VHDX as a convert target: chosen by the destination's name (*.vhdx, *.avhdx)."""

from __future__ import annotations

from .convert import VHDX_SUFFIXES, is_vhdx_target
from .image import DiskImage
from .vhdx import VhdxImage
from .vhdx_create import write_vhdx
from .vhdx_layout import DEFAULT_BLOCK_SIZE


def default_block_size(source: DiskImage) -> int:
    """A VHDX source's block size, else the VHDX default (32 MiB)."""
    return source.block_size if isinstance(source, VhdxImage) else DEFAULT_BLOCK_SIZE


__all__ = ["VHDX_SUFFIXES", "default_block_size", "is_vhdx_target", "write_vhdx"]
