"""Adapters: the only code that talks to AWS or an orchestrator. They translate, they never decide."""
