"""Config of the IXC-2.5-Reward stand-in, shaped like the real one's.

Like upstream's InternLM-XComposer2 config, it takes `attn_implementation` as its own argument
(default flash_attention_2) and keeps it as a public attribute the decoder layers read;
transformers 5 never sees it. `max_length` is not an argument: the model's `__init__` reads it
from the config, where transformers 4.x kept every key of config.json and 5.x does not.
"""

from transformers import PretrainedConfig


class TinyIxcConfig(PretrainedConfig):
    model_type = "tiny_ixc_reward"

    def __init__(
        self,
        vocab_size=320,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        vision_hidden_size=8,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="flash_attention_2",
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.vision_hidden_size = vision_hidden_size
        self.attn_implementation = attn_implementation or "flash_attention_2"
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )
