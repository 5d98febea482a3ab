"""Real transformers backends inside the Beam pipeline: a mixed run sends media samples to a
Qwen2-VL value-head model and text-only samples to a text RM, batched by token budget; the
remote-code IXC backend runs only when opted in."""

from __future__ import annotations

import pytest

from models.ixc25 import RemoteCodeNotAllowed
from pipelines.clean import run
from tests.helpers import tiny_config
from tests.tiny_models import build_tiny_ixc, build_tiny_qwen_vl, build_tiny_text_rm


@pytest.mark.slow
def test_mixed_run_uses_a_vlm_for_media_and_a_text_rm_for_text(tiny_dataset, tmp_path):
    qwen = build_tiny_qwen_vl(tmp_path / "qwen")
    text = build_tiny_text_rm(tmp_path / "text")
    config = tiny_config(tiny_dataset, tmp_path / "out").with_overrides(
        model="vlm-value-head",
        model_options={"path": str(qwen)},
        text_model="text-rm",
        text_model_options={"path": str(text)},
        max_batch_tokens=4096,
        percentile=50.0,
    )
    summary = run(config)
    counts = summary["counts"]["per_source"]
    # Random weights: which half is flagged is arbitrary, but every sample is scored and
    # routed, and the broken/missing media still land in errors.
    assert counts["images"]["input"] == 6 and counts["images"]["errors"] == 2
    assert counts["text"] == {"input": 1, "clean": 1, "review": 0, "errors": 0}
    assert summary["scoring"]["scored"] == 6  # 4 images (incl. the 'nan' one), 2 videos, 1 text
    assert (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.slow
def test_remote_code_backend_needs_the_opt_in(tiny_dataset, tmp_path):
    ixc = build_tiny_ixc(tmp_path / "ixc")
    config = tiny_config(tiny_dataset, tmp_path / "out").with_overrides(
        model="ixc25", model_options={"path": str(ixc)}
    )
    with pytest.raises(RemoteCodeNotAllowed, match="trust-remote-code"):
        run(config)
    summary = run(config.with_overrides(trust_remote_code=True, output=str(tmp_path / "ok")))
    assert summary["counts"]["total"]["input"] == 9 and summary["scoring"]["scored"] >= 5
