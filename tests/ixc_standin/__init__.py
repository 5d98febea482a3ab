"""A tiny stand-in for InternLM-XComposer2.5-Reward's remote code (see modeling_tiny_ixc.py).

These files are copied into a checkpoint folder by `tests.tiny_models.build_tiny_ixc` and run
from there as the checkpoint's own code, through transformers' dynamic-module loading.
"""
