"""Presets beyond tiny (filled in by the text and gpu arenas)."""

from __future__ import annotations

PRESETS: dict[str, object] = {}
