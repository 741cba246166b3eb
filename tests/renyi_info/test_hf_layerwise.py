"""renyi_info.hf with tiny random transformers models built from configs (nothing is downloaded)."""

from __future__ import annotations

import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the network
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from types import SimpleNamespace

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from renyi_info import hf  # noqa: E402
from renyi_info import layerwise as lw  # noqa: E402

WORDS = "the cat sat on a mat and dog ran far away from home in rain".split()


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, vocab_size=40, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2Model(config)


def _bert() -> torch.nn.Module:
    torch.manual_seed(1)
    config = transformers.BertConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=40,
        max_position_embeddings=32,
    )
    return transformers.BertModel(config)


def _tokenizer():
    """A word-level tokenizer built in memory from a fixed vocabulary."""
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def _inputs(n: int = 7, t: int = 9) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(2, 40, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    for i in range(n):
        mask[i, 3 + i % (t - 3) :] = 0  # right padding, lengths 3..t
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("build", [_gpt2, _bert], ids=["gpt2-like", "bert-like"])
def test_batches_reduce_to_the_all_at_once_values(build) -> None:
    model = build()
    inputs = _inputs()
    table = hf.layerwise_metrics(
        model, inputs, batch_size=3, metrics=hf.METRICS, alpha=1.0, normalization="max", progress=False
    )
    assert table.layers == [0, 1, 2] and table.sequences == 7  # embeddings + 2 blocks
    assert model.training  # a fresh transformers model is in train mode: restored after the run
    model.eval()  # the run is in eval mode (no dropout): so is the reference
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    mask = inputs["attention_mask"]
    prompt = lw.prompt_entropy(hidden, mask, alpha=1.0, normalization="max").double().mean(1)
    dataset = lw.dataset_entropy(hidden, mask, alpha=1.0, normalization="max").double()
    erank = torch.exp(lw.prompt_entropy(hidden, mask, kernel="cosine", centre=True).double().mean(1))
    # the same float32 forward pass on 3 rows at a time instead of 7: matrix products may round differently
    # (about 1e-6 relative in the hidden states), which moves these well-conditioned entropies by as much
    for name, want in (("prompt_entropy", prompt), ("dataset_entropy", dataset), ("effective_rank", erank)):
        torch.testing.assert_close(
            torch.tensor(table.columns[name], dtype=torch.float64), want, rtol=1e-4, atol=1e-5
        )
    rows = table.rows()
    assert rows[1]["layer"] == 1 and rows[1]["prompt_entropy"] == table.columns["prompt_entropy"][1]
    assert table.to_dict()["layer"] == [0, 1, 2]


def test_tokenizer_and_texts() -> None:
    model, tok = _bert(), _tokenizer()
    texts = ["the cat sat on a mat", "a dog ran far away from home", "rain", "in the rain the cat ran home"]
    table = hf.layerwise_metrics(model, tokenizer=tok, texts=texts, batch_size=2, progress=False)
    model.eval()
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    # a one-word text is a one-token prompt: entropy 0
    want = lw.prompt_entropy(hidden, enc["attention_mask"]).double().mean(1)
    # batches of 2 are padded to their own longest text, not to the longest of all: BERT's real tokens see
    # the same keys either way (padding is masked out of attention), so only round-off differs
    torch.testing.assert_close(
        torch.tensor(table.columns["prompt_entropy"], dtype=torch.float64), want, rtol=1e-4, atol=1e-5
    )


def test_one_batch_of_hidden_states_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = lw.prompt_entropy

    def spy(hidden, mask, **kw):
        seen.append(len(mask))
        return real(hidden, mask, **kw)

    monkeypatch.setattr(lw, "prompt_entropy", spy)
    hf.layerwise_metrics(_gpt2(), _inputs(7), batch_size=3, metrics=["prompt_entropy"], progress=False)
    assert seen == [3, 3, 1]


def test_a_model_without_hidden_states_is_refused() -> None:
    class NoHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(40, 4)

        def forward(self, input_ids, attention_mask, output_hidden_states):
            return SimpleNamespace(last_hidden_state=self.emb(input_ids), hidden_states=None)

    class NoKeyword(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids

    with pytest.raises(ValueError, match=r"returned no hidden states"):
        hf.layerwise_metrics(NoHidden(), _inputs(), progress=False)
    with pytest.raises(ValueError, match=r"does not take output_hidden_states"):
        hf.layerwise_metrics(NoKeyword(), _inputs(), progress=False)


def test_argument_errors() -> None:
    model = _gpt2()
    with pytest.raises(ValueError, match=r"metrics must be"):
        hf.layerwise_metrics(model, _inputs(), metrics=["entropy"], progress=False)
    with pytest.raises(ValueError, match=r"either inputs"):
        hf.layerwise_metrics(model, _inputs(), tokenizer=_tokenizer(), texts=["a"], progress=False)
    with pytest.raises(ValueError, match=r"tokenizer and texts"):
        hf.layerwise_metrics(model, progress=False)
    with pytest.raises(ValueError, match=r"batch_size"):
        hf.layerwise_metrics(model, _inputs(), batch_size=0, progress=False)
    bad = _inputs()
    bad["attention_mask"][2] = 0
    with pytest.raises(ValueError, match=r"sequence 2 has no token"):
        hf.layerwise_metrics(model, bad, batch_size=7, progress=False)


def test_plot() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    table = hf.layerwise_metrics(_gpt2(), _inputs(), progress=False)
    ax = table.plot("prompt_entropy", label="gpt2-like")
    assert list(ax.lines[0].get_xdata()) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"metric must be one of"):
        table.plot("nope")
    with pytest.raises(ValueError, match=r"metric must be one of"):
        table.plot("")  # not read as "the first column"


def _entropy_nats(gram: torch.Tensor) -> float:
    """Von Neumann entropy of the trace-normalised float64 Gram, by a plain eigendecomposition."""
    w = torch.linalg.eigvalsh(gram / torch.trace(gram)).clamp_min(0)
    w = w[w > 0]
    return float(-(w * w.log()).sum())


def _alone(model: torch.nn.Module, tok, texts: list[str]) -> tuple[list[float], list[float]]:
    """Every text run alone (no padding at all): mean prompt entropy and data-set entropy per layer."""
    model.eval()
    prompts, pooled = [], []
    for text in texts:
        enc = tok([text], return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        z = [h[0].double() for h in hidden]
        prompts.append([_entropy_nats(h @ h.T) for h in z])
        pooled.append([h.mean(0) for h in z])
    prompt = torch.tensor(prompts, dtype=torch.float64).mean(0).tolist()
    dataset = []
    for layer in range(len(pooled[0])):
        v = torch.stack([p[layer] for p in pooled])
        dataset.append(_entropy_nats(v @ v.T))
    return prompt, dataset


def _assert_matches(table, prompt: list[float], dataset: list[float]) -> None:
    """The table's prompt and dataset entropies against the one-text-at-a-time reference (float32 forward
    passes of the same model: only the entropy routines differ, ~1e-7; 1e-5 leaves room for BLAS order)."""
    torch.testing.assert_close(
        torch.tensor(table.columns["prompt_entropy"]), torch.tensor(prompt), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        torch.tensor(table.columns["dataset_entropy"]), torch.tensor(dataset), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_side_does_not_change_the_values(side: str) -> None:
    # GPT-2 adds absolute position embeddings by position index: a left-padded text must not be read as
    # starting at position (T - length); every text must give what it gives when run alone
    model, tok = _gpt2(), _tokenizer()
    tok.padding_side = side
    texts = ["the cat sat on a mat", "dog ran", "a dog ran far away from home in the rain", "rain"]
    table = hf.layerwise_metrics(model, tokenizer=tok, texts=texts, batch_size=3, progress=False)
    prompt, dataset = _alone(model, tok, texts)
    # float32 forward passes of different batch shapes round differently (~1e-6 relative in the states);
    # these entropies of well-separated spectra move by as much; a shifted position is off by > 1e-2
    _assert_matches(table, prompt, dataset)
    enc = tok(texts, return_tensors="pt", padding=True)  # the same, tokenised by the caller
    given = hf.layerwise_metrics(model, enc, batch_size=3, progress=False)
    _assert_matches(given, prompt, dataset)


def test_a_tokenizer_without_pad_token_works_one_text_at_a_time() -> None:
    # GPT-2's tokenizer has no pad token; the error's advice (batch_size=1) must then work
    model, tok = _gpt2(), _tokenizer()
    texts = ["the cat sat on a mat", "dog ran", "rain"]
    prompt, dataset = _alone(model, tok, texts)
    tok.pad_token = None
    with pytest.raises(ValueError, match=r"no padding token.*batch_size=1"):
        hf.layerwise_metrics(model, tokenizer=tok, texts=texts, batch_size=2, progress=False)
    table = hf.layerwise_metrics(model, tokenizer=tok, texts=texts, batch_size=1, progress=False)
    # the same unpadded float32 forward passes as the reference: only the entropy routines differ (~1e-7)
    _assert_matches(table, prompt, dataset)


def test_texts_any_iterable_and_integer_batch_sizes() -> None:
    model, tok = _gpt2(), _tokenizer()
    texts = ["the cat sat on a mat", "dog ran", "rain"]
    want = hf.layerwise_metrics(model, tokenizer=tok, texts=texts, batch_size=2, progress=False)
    got = hf.layerwise_metrics(
        model, tokenizer=tok, texts=iter(texts), batch_size=np.int64(2), progress=False
    )
    assert got.columns == want.columns and got.sequences == 3  # same batches, same arithmetic: identical


def test_wrong_arguments_name_themselves() -> None:
    model, tok = _gpt2(), _tokenizer()
    inputs = _inputs()
    cases = [
        (TypeError, r"texts must .* strings; got int", dict(tokenizer=tok, texts=["the cat", 3])),
        (ValueError, r"texts must be a non-empty", dict(tokenizer=tok, texts=iter([]))),
        (
            ValueError,
            r"max_length must be an integer >= 1.*got 0",
            dict(tokenizer=tok, texts=["a"], max_length=0),
        ),
        (
            ValueError,
            r"max_length must be an integer >= 1.*got -3",
            dict(tokenizer=tok, texts=["a"], max_length=-3),
        ),
        (
            TypeError,
            r"metrics must be a sequence of names.*\['prompt_entropy'\]",
            dict(metrics="prompt_entropy"),
        ),
        (TypeError, r"inputs must be a mapping", dict(inputs=inputs["input_ids"])),
        (
            TypeError,
            r"input_ids.* integer token ids.*float32",
            dict(inputs={"input_ids": inputs["input_ids"].float()}),
        ),
        (
            TypeError,
            r"attention_mask.* tensor.*list",
            dict(inputs={**inputs, "attention_mask": [[1] * 9] * 7}),
        ),
        (ValueError, r"input_ids.*no sequence", dict(inputs={"input_ids": inputs["input_ids"][:0]})),
    ]
    for error, message, kwargs in cases:
        kwargs = {"inputs": inputs, **kwargs} if "texts" not in kwargs else kwargs
        with pytest.raises(error, match=message):
            hf.layerwise_metrics(model, progress=False, **kwargs)


def test_model_side_failures_are_explained() -> None:
    tok = _tokenizer()
    long_text = " ".join(WORDS * 3)  # 45 tokens, the model has 32 positions
    with pytest.raises(ValueError, match=r"45 tokens.*max_length"):
        hf.layerwise_metrics(_gpt2(), tokenizer=tok, texts=[long_text, "rain"], progress=False)
    # truncated, it runs: the first 32 tokens
    table = hf.layerwise_metrics(
        _gpt2(), tokenizer=tok, texts=[long_text, "rain"], max_length=32, progress=False
    )
    assert table.sequences == 2
    torch.manual_seed(0)
    t5 = transformers.T5Model(
        transformers.T5Config(vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)
    )
    with pytest.raises(ValueError, match=r"encoder-decoder.*get_encoder\(\)"):
        hf.layerwise_metrics(t5, _inputs(), progress=False)

    class Growing(torch.nn.Module):  # one more layer at every call
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(40, 4)

        def forward(self, input_ids, attention_mask, output_hidden_states):
            self.emb.calls = getattr(self.emb, "calls", 0) + 1
            return {"hidden_states": (self.emb(input_ids),) * (1 + self.emb.calls)}

    with pytest.raises(ValueError, match=r"batch 1 .* 3 layers.* 2"):
        hf.layerwise_metrics(Growing(), _inputs(), batch_size=4, metrics=hf.METRICS, progress=False)


def test_a_model_returning_tuples_still_gives_its_hidden_states() -> None:
    model = _gpt2()
    want = hf.layerwise_metrics(model, _inputs(), progress=False)
    model.config.return_dict = False  # its forward then returns plain tuples
    got = hf.layerwise_metrics(model, _inputs(), progress=False)
    assert got.columns == want.columns  # the same forward pass


def test_metrics_from_a_generator_are_all_computed() -> None:
    model = _gpt2()
    want = hf.layerwise_metrics(
        model, _inputs(), metrics=["prompt_entropy", "dataset_entropy"], progress=False
    )
    got = hf.layerwise_metrics(model, _inputs(), metrics=(m for m in want.columns), progress=False)
    assert got.columns == want.columns and got.layers == [0, 1, 2]  # not an empty table
    with pytest.raises(TypeError, match=r"progress must be True or False"):
        hf.layerwise_metrics(model, _inputs(), progress="no")


def test_an_error_in_a_later_batch_names_the_sequence_of_the_whole_input() -> None:
    model = _gpt2()
    bad = _inputs(7)
    bad["attention_mask"][5] = 0  # the sixth sequence, the third of the second batch of 3
    with pytest.raises(ValueError, match=r"sequences 3 to 5 .*sequence 2 has no token"):
        hf.layerwise_metrics(model, bad, batch_size=3, progress=False)


def test_a_single_text() -> None:
    model, tok = _gpt2(), _tokenizer()
    table = hf.layerwise_metrics(model, tokenizer=tok, texts=["the cat sat"], batch_size=4, progress=False)
    prompt, _ = _alone(model, tok, ["the cat sat"])
    # one pooled vector: a rank-one Gram, entropy exactly 0 (printed as 0.0, not -0.0)
    assert [math.copysign(1.0, v) for v in table.columns["dataset_entropy"]] == [1.0, 1.0, 1.0]
    assert table.columns["dataset_entropy"] == [0.0, 0.0, 0.0]
    # one unpadded float32 forward pass, as in the reference
    torch.testing.assert_close(
        torch.tensor(table.columns["prompt_entropy"]), torch.tensor(prompt), atol=1e-5, rtol=1e-5
    )


def test_token_type_ids_reach_the_model() -> None:
    # a sentence pair for BERT: segment ids 0 then 1 change the embeddings; dropping them changes every value
    model = _bert()
    inputs = _inputs(4, 8)
    inputs["token_type_ids"] = (torch.arange(8) >= 2).long().expand(4, 8).clone()
    table = hf.layerwise_metrics(model, inputs, batch_size=3, progress=False)
    model.eval()
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    want = lw.prompt_entropy(hidden, inputs["attention_mask"]).double().mean(1)
    # float32 forward passes of 3 + 1 rows instead of 4: round-off only (see the first test)
    torch.testing.assert_close(
        torch.tensor(table.columns["prompt_entropy"], dtype=torch.float64), want, rtol=1e-4, atol=1e-5
    )
