"""The stand-in's config: upstream's InternLMXcomposer2Config fields and defaults.

Like upstream it takes `attn_implementation` itself (default flash_attention_2) and keeps it as
a plain attribute the decoder layers read, so transformers never chooses the attention; and
`max_length`, which the model reads in `__init__`, is not an argument: transformers 4.x kept
every key of config.json on the config, 5.x drops unknown ones.
"""

from transformers.configuration_utils import PretrainedConfig


class InternLMXcomposer2Config(PretrainedConfig):
    model_type = "internlm2"
    _auto_class = "AutoConfig"

    def __init__(
        self,
        vocab_size=103168,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=None,
        hidden_act="silu",
        max_position_embeddings=2048,
        initializer_range=0.02,
        rms_norm_eps=1e-6,
        use_cache=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        bias=True,
        rope_theta=10000,
        rope_scaling=None,
        attn_implementation="flash_attention_2",
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.bias = bias
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.hidden_act = hidden_act
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self._check_rope_scaling()
        self.attn_implementation = attn_implementation or "flash_attention_2"
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def _check_rope_scaling(self):
        # Upstream accepts None or {"type": "linear" | "dynamic", "factor": float >= 1}.
        if self.rope_scaling is None:
            return
        scaling = self.rope_scaling
        if not isinstance(scaling, dict) or len(scaling) != 2:
            raise ValueError(f"rope_scaling must be a dict of type and factor, got {scaling}")
        if scaling.get("type") not in ("linear", "dynamic"):
            raise ValueError(f"rope_scaling type must be linear or dynamic, got {scaling}")
        factor = scaling.get("factor")
        if not isinstance(factor, float) or factor < 1.0:
            raise ValueError(f"rope_scaling factor must be a float >= 1, got {factor}")
