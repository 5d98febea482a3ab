"""A stand-in for InternLM-XComposer2.5-Reward's remote code, at any width.

Written from reading upstream (the reward checkpoint's modeling_internlm_xcomposer2.py and
IXC-2.5's modeling_internlm2.py, configuration_internlm_xcomposer2.py, build_mlp.py,
ixc_utils.py and tokenization_internlm2.py), not copied from it. It keeps what rmclean touches
or patches: the file, class, function and attribute names, the module tree (so the state dict
names are upstream's), the config fields, the attention-class table chosen by
`config.attn_implementation`, the forward signatures, the torchvision image pipeline and the
sentencepiece tokenizer. The one deliberate difference: upstream hard-codes 4096 for the merged
vision width and the projector (the real hidden size, four CLIP-L widths); here they follow
`config.hidden_size`, so a tiny checkpoint can be built (`tests.tiny_models.build_tiny_ixc`).

`build_tiny_ixc` copies these files into a checkpoint folder, where they run as the
checkpoint's own code through transformers' dynamic-module loading.
"""
