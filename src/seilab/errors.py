"""Exceptions that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class SeilabError(Exception):
    """Base class of user-facing errors (bad input, bad folder, bad arguments)."""


class ModelError(SeilabError):
    """A model file or override is invalid; the message names the file, key and what is allowed."""


class CampaignError(SeilabError):
    """A campaign design or folder is invalid."""


class AnalysisError(SeilabError):
    """A data set cannot be analysed (empty folder, missing column, unknown parameter)."""
