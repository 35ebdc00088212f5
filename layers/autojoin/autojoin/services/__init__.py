"""Use cases. They talk to ports only and return decisions (refusals are decisions, not exceptions)."""
