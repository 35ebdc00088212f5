"""autojoin: keeps self-managed orchestrator clusters on EC2 Auto Scaling groups alive without a human."""

__version__ = "0.1.0"
