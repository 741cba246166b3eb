"""docs/guides/layer-by-layer.md runs as written, with a tiny random model instead of the download."""

from __future__ import annotations

import os

# the guide's first block (the download) is replaced: nothing else may fetch
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
matplotlib = pytest.importorskip("matplotlib")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "layer-by-layer.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def _tiny_model_and_tokenizer():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, vocab_size=64, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    words = sorted({w for w in re.findall(r"[A-Za-z]+", GUIDE.read_text(encoding="utf-8"))})[:60]
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]"
    )
    return transformers.GPT2Model(config), tokenizer


def test_the_guide_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    load, measure, tensors = _blocks()
    assert "from_pretrained" in load  # the user's download, replaced here by a tiny random model
    model, tokenizer = _tiny_model_and_tokenizer()
    monkeypatch.chdir(tmp_path)
    namespace = {"model": model, "tokenizer": tokenizer, "name": "tiny random GPT-2"}
    exec(compile(measure, str(GUIDE), "exec"), namespace)
    table = namespace["table"]
    assert table.layers == [0, 1, 2] and table.sequences == 32
    assert set(table.columns) == {"prompt_entropy", "dataset_entropy", "effective_rank"}
    assert all(0.0 <= v <= 1.0 for v in table.columns["prompt_entropy"])  # normalised by log min(N, d)
    assert (tmp_path / "prompt_entropy.png").stat().st_size > 0
    exec(compile(tensors, str(GUIDE), "exec"), namespace)
    assert namespace["prompt"].shape == (3, 8, 3)
    assert namespace["dataset"].shape == (3,)
    assert namespace["erank"].shape == (3, 8)
