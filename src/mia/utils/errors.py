"""User-facing errors: the command line prints their message and exits with status 2."""


class MiaError(Exception):
    """An error caused by the user's input (files, options, data), with a readable message."""


class DatasetError(MiaError):
    """A dataset file or entry is invalid; the message names the file, entry and field."""


class ConfigError(MiaError):
    """A configuration is invalid; the message names the key and the valid choices."""


class CheckpointError(MiaError):
    """A checkpoint is missing, corrupt, or belongs to another configuration or vocabulary."""
