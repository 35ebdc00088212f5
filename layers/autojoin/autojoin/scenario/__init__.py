"""Replay and simulation on the local cloud: the STATE and scenario formats, the runner, the invariant
checker and the timeline rendering behind ``autojoin replay`` and ``autojoin simulate``.

See docs/scenarios.md for the file formats.
"""
