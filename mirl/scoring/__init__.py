"""Scoring a network: metrics (PSNR/SSIM as the published code computes them), tiled restoration
of photos, and evaluation on a data set's test folders.

Example:
    >>> from mirl.scoring.metrics import psnr
"""

__all__ = ["evaluate", "metrics", "restore"]
