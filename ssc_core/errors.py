"""Exceptions raised by ssc_core: one base class so CLIs and nodes can catch everything we raise on purpose."""

from __future__ import annotations


class SSCError(Exception):
    """Base class of every error ssc_core raises deliberately (bad input, bad config, bad file)."""


class DataFormatError(SSCError, ValueError):
    """A file or array does not have the format it should; the message names the file and what is wrong."""


class ConfigError(SSCError, ValueError):
    """A config (YAML or dict) is missing a key or holds a value that cannot work."""


class CheckpointMismatchError(SSCError, ValueError):
    """A checkpoint does not fit the model/config/grid it is loaded into; the message says what differs."""


class Interrupted(Exception):
    """A run stopped by the user (Ctrl-C); the message says what was kept and how to continue. Not an SSCError:
    nothing was wrong with the input."""
