"""Masks, magnitude pruning, the lottery-ticket controls and sparse export."""
