"""The local cloud's own error: it was used wrongly (not entered, unknown group or function, ...)."""


class LocalCloudError(RuntimeError):
    """The local cloud was used wrongly (not entered, unknown group or function, ...)."""
