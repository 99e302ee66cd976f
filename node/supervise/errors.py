"""Errors of process supervision; each names what to look at (usually a log)."""

from __future__ import annotations


class SuperviseError(Exception):
    """A child process that exited or never reported, or demo settings that cannot be used."""
