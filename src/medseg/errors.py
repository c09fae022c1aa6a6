"""Exceptions medseg raises for problems the user can fix (bad files, prompts, options)."""

from __future__ import annotations

__all__ = ["MedsegError", "InputError", "PromptError", "ModelError"]


class MedsegError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class InputError(MedsegError, ValueError):
    """A file or array cannot be used: missing, corrupt, wrong shape, NaNs, bad labels."""


class PromptError(MedsegError, ValueError):
    """A prompt (box, point, scribble, slice) is empty, malformed or outside the image."""


class ModelError(MedsegError, LookupError):
    """An unknown model name or unusable weights."""
