"""Backbones: loading by preset/alias/id/path (``loader``), the loaded handle (``loaded``), the tiny presets
(``tiny_gpt2``, ``tiny_init``), and the model facts every part reads (``facts``).

The public kit: ``load_backbone`` and ``Backbone``.
"""

from benchbed.llm.backbone.loaded import Backbone
from benchbed.llm.backbone.loader import load_backbone

__all__ = ["Backbone", "load_backbone"]
