"""mirl: a reproducible study kit for MIR-L (lottery-ticket pruning of PromptIR)."""

__version__ = "0.1.0"
