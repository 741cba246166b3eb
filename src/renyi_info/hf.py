r"""Layer-wise entropies of a Hugging Face model's hidden states, batch by batch (extra ``hf``).

`layerwise_metrics` runs a model (anything called as ``model(input_ids=..., attention_mask=...,
output_hidden_states=True)`` that returns an object with ``hidden_states``: every ``transformers``
``PreTrainedModel``) over tokenised inputs, or over texts with a tokenizer, ``batch_size`` sequences at a
time, and reduces each batch at once (`renyi_info.layerwise`): it never holds the hidden states of more
than one batch. It returns a `LayerwiseTable` (one row per layer, ``to_dict()``/``rows()``, ``plot()``).

Per layer $\ell$ (``hidden_states[0]`` is the embedding output, so a model with ``L`` blocks gives
``L + 1`` rows):

* ``prompt_entropy``: the mean over all sequences of `renyi_info.layerwise.prompt_entropy`;
* ``dataset_entropy``: `renyi_info.layerwise.dataset_entropy` of one pooled vector per sequence, over all
  sequences (the pooled vectors, ``(L + 1) x N x d`` numbers, are the only thing kept across batches);
* ``effective_rank``: Wei et al.'s data-set convention $\exp\big(\frac1N\sum_b S_1(\tilde Z_{\ell b})\big)$
  (`renyi_info.layerwise.effective_rank`).

The code imports neither ``transformers`` nor ``tqdm`` at import time; ``pip install
"renyi-info[hf]"`` brings both (the progress bar is skipped without ``tqdm``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import layerwise as lw
from ._validation import check_alpha, check_flag

__all__ = ["METRICS", "LayerwiseTable", "layerwise_metrics"]

#: The per-layer quantities `layerwise_metrics` can report.
METRICS: tuple[str, ...] = ("prompt_entropy", "dataset_entropy", "effective_rank")


@dataclass(frozen=True)
class LayerwiseTable:
    """Per-layer results: ``columns[name][i]`` is the value of ``name`` at layer ``layers[i]``.

    Attributes:
        layers: layer indices (0: the embedding output).
        columns: one list of floats per metric, one value per layer.
        sequences: how many sequences were measured.
        settings: the options of the run (alpha, normalisation, pooling...).
    """

    layers: list[int]
    columns: dict[str, list[float]]
    sequences: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"layer": [...], <metric>: [...], ...}`` (column-wise; ``pandas.DataFrame(table.to_dict())``)."""
        return {"layer": list(self.layers), **{k: list(v) for k, v in self.columns.items()}}

    def rows(self) -> list[dict[str, float]]:
        """One ``{"layer": l, <metric>: value, ...}`` per layer."""
        return [
            {"layer": layer, **{k: v[i] for k, v in self.columns.items()}}
            for i, layer in enumerate(self.layers)
        ]

    def plot(self, metric: str | None = None, ax: Any = None, **kwargs: Any) -> Any:
        """Plot ``metric`` (default: the first column) against the layer with matplotlib; returns the axes.

        Args:
            metric: a column name.
            ax: a matplotlib ``Axes`` to draw into (a new figure otherwise).
            **kwargs: passed to ``ax.plot`` (``label``, ``marker``...).
        """
        name = metric if metric is not None else next(iter(self.columns))
        if name not in self.columns:
            raise ValueError(f"metric must be one of {list(self.columns)}; got {name!r}")
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("LayerwiseTable.plot needs matplotlib: pip install matplotlib") from err
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        kwargs.setdefault("marker", "o")
        ax.plot(self.layers, self.columns[name], **kwargs)
        ax.set_xlabel("layer")
        ax.set_ylabel(name.replace("_", " "))
        return ax


def _progress(items: Sequence[Any], enabled: bool, total: int) -> Iterable[Any]:
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the hf extra
        return items
    return tqdm(items, total=total, desc="layerwise", unit="batch")


#: Per-token model inputs passed on with ``input_ids`` and ``attention_mask`` when given (other keys of a
#: tokenizer's output, such as ``special_tokens_mask``, are not model inputs).
_PER_TOKEN_INPUTS = ("token_type_ids", "position_ids")


def _batches_of_inputs(
    inputs: Mapping[str, Any], batch_size: int
) -> tuple[list[dict[str, torch.Tensor]], int]:
    if not isinstance(inputs, Mapping):
        raise TypeError(
            "inputs must be a mapping {'input_ids': (N, T), 'attention_mask': (N, T)} (a tokenizer's output with "
            f"return_tensors='pt'); got {type(inputs).__name__}. For raw texts pass tokenizer= and texts="
        )
    if "input_ids" not in inputs:
        raise ValueError(
            "inputs must hold 'input_ids' (and usually 'attention_mask'), as a tokenizer returns them; "
            f"got keys {list(inputs)}"
        )
    ids = inputs["input_ids"]
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError("inputs['input_ids'] must be a (N, T) tensor; tokenise with return_tensors='pt'")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(
            f"inputs['input_ids'] must hold integer token ids; got dtype {ids.dtype}. Pass the tokenizer's "
            "input_ids unchanged (or convert them with .long())"
        )
    if ids.shape[0] == 0:
        raise ValueError(
            f"inputs['input_ids'] holds no sequence (shape {tuple(ids.shape)}); pass at least one"
        )
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(ids)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"inputs['attention_mask'] must be a (N, T) tensor of 0/1 or absent; got {type(mask).__name__}. "
            "Tokenise with return_tensors='pt'"
        )
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(
            f"inputs['attention_mask'] has shape {tuple(mask.shape)}, inputs['input_ids'] {tuple(ids.shape)}: "
            "they must match"
        )
    given = {"input_ids": ids, "attention_mask": mask}
    for key in _PER_TOKEN_INPUTS:
        value = inputs.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(ids.shape):
            raise ValueError(
                f"inputs[{key!r}] must be a tensor of the shape of input_ids {tuple(ids.shape)}; got "
                f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}"
            )
        given[key] = value
    n = ids.shape[0]
    return [{k: v[i : i + batch_size] for k, v in given.items()} for i in range(0, n, batch_size)], n


def _checked_texts(texts: object) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise ValueError(
            f"texts must be a non-empty sequence of strings (a list, not one string); got {type(texts).__name__}"
        )
    texts = list(texts)
    if not texts:
        raise ValueError("texts must be a non-empty sequence of strings; got none")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must hold strings; got {type(text).__name__} at position {i}")
    return texts


def _batches_of_texts(
    tokenizer: Any, texts: Sequence[str], batch_size: int, max_length: int | None
) -> Iterator[dict[str, torch.Tensor]]:
    if batch_size > 1 and getattr(tokenizer, "pad_token", "") is None:
        raise ValueError(
            "the tokenizer has no padding token, which batches of texts of different lengths need; set "
            "tokenizer.pad_token = tokenizer.eos_token (GPT-2, Pythia) or pass batch_size=1"
        )
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]),
            return_tensors="pt",
            padding=batch_size > 1,
            truncation=max_length is not None,
            max_length=max_length,
        )
        yield {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _right_padded(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each sequence's real tokens moved to the front, in order, the padding after them.

    Models number positions from the first column (absolute position embeddings, rotary angles), so a
    left-padded text would be read as starting at position ``T - length``; right padding gives every
    text the hidden states it has when run alone.
    """
    mask = batch["attention_mask"]
    order = (mask == 0).to(torch.int8).argsort(dim=-1, stable=True)
    return {k: v.gather(-1, order) for k, v in batch.items()}


def _check_model(model: Any) -> dict[str, bool]:
    """Refuse encoder-decoder models; the extra keywords of the forward call."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) is True:
        raise ValueError(
            f"model is an encoder-decoder ({type(model).__name__}), whose forward pass needs decoder inputs and "
            "returns two stacks of hidden states; measure one stack: pass model.get_encoder()"
        )
    # a config with return_dict=False makes transformers models return plain tuples
    return {"return_dict": True} if getattr(config, "return_dict", True) is False else {}


def _hidden_states(
    model: Any, batch: dict[str, torch.Tensor], extra: dict[str, bool]
) -> tuple[torch.Tensor, ...]:
    try:
        out = model(**batch, output_hidden_states=True, **extra)
    except IndexError as err:
        config = getattr(model, "config", None)
        limits = [
            f"{name} = {getattr(config, name)}"
            for name in ("vocab_size", "max_position_embeddings")
            if isinstance(getattr(config, name, None), int)
        ]
        longest = int(batch["attention_mask"].sum(-1).max())
        raise ValueError(
            f"the model failed on a batch whose longest sequence has {longest} tokens ({err}): token ids must be "
            f"below the model's vocabulary size and sequences no longer than its positions"
            f"{' (' + ', '.join(limits) + ')' if limits else ''}; pass max_length=<positions> with texts, or "
            "truncate the inputs"
        ) from err
    except TypeError as err:
        raise ValueError(
            f"the model does not take output_hidden_states=True ({err}); pass a transformers model (AutoModel, "
            "AutoModelForCausalLM...) or wrap yours to return an object with .hidden_states"
        ) from err
    hidden = getattr(out, "hidden_states", None)
    if hidden is None and isinstance(out, Mapping):
        hidden = out.get("hidden_states")
    if hidden is None:
        raise ValueError(
            f"the model returned no hidden states ({type(out).__name__} without .hidden_states): it must return "
            "them for output_hidden_states=True, as transformers models do (check config.output_hidden_states "
            "is not forced off, or wrap the model to return them)"
        )
    return tuple(hidden)


def layerwise_metrics(
    model: Any,
    inputs: Mapping[str, Any] | None = None,
    *,
    tokenizer: Any = None,
    texts: Iterable[str] | None = None,
    batch_size: int = 8,
    metrics: Sequence[str] = ("prompt_entropy", "dataset_entropy"),
    alpha: float = 1.0,
    normalization: lw.Normalization = "none",
    pooling: lw.Pooling = "mean",
    max_length: int | None = None,
    progress: bool = True,
) -> LayerwiseTable:
    r"""Collect hidden states batch by batch and reduce them to one value per layer and metric.

    Args:
        model: a ``transformers`` model (or any module with the same call convention); run under
            ``torch.no_grad`` in eval mode (its mode is restored afterwards), on the device of its parameters.
        inputs: tokenised inputs ``{"input_ids": (N, T), "attention_mask": (N, T)}`` (a tokenizer's output
            with ``return_tensors="pt"``); or ``None`` with ``tokenizer`` and ``texts``. Left or right
            padding: each sequence's real tokens are moved to the front before the forward pass, so that
            its positions start at 0 and it gives the hidden states it has when run alone. ``token_type_ids``
            and ``position_ids``, when present, are passed to the model too (moved with their tokens).
        tokenizer: a tokenizer called per batch with ``padding=True`` (it needs a pad token unless
            ``batch_size=1``).
        texts: the texts to tokenise (a list, or any iterable of strings: it is read once into a list).
        batch_size: sequences per forward pass (memory: one batch's hidden states at a time).
        metrics: any of `METRICS`.
        alpha: the order of the entropies (``effective_rank`` is always α = 1).
        normalization: of the entropies (`renyi_info.layerwise.NORMALIZATIONS`); Skean et al. use ``"max"``.
        pooling: ``"mean"`` or ``"last"`` for ``dataset_entropy``.
        max_length: truncate texts to this many tokens.
        progress: show a ``tqdm`` progress bar.

    Returns:
        A `LayerwiseTable`.

    Raises:
        ValueError: neither ``inputs`` nor ``tokenizer`` and ``texts``; an unknown metric; a model that returns
            no hidden states, or not the same layers for every batch; an encoder-decoder model (pass its
            encoder); sequences longer than the model's positions or token ids beyond its vocabulary; and
            the errors of `renyi_info.layerwise` (empty sequences, non-finite states).
        TypeError: ``inputs`` not a mapping, ``input_ids`` not integer, texts that are not strings,
            ``metrics`` given as one string.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> from renyi_info.hf import layerwise_metrics
        >>> class Toy(torch.nn.Module):  # two "layers": the embedding and its square
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(10, 4)
        ...     def forward(self, input_ids, attention_mask, output_hidden_states):
        ...         e = self.emb(input_ids)
        ...         return SimpleNamespace(hidden_states=(e, e * e))
        >>> ids = torch.randint(0, 10, (6, 5), generator=torch.Generator().manual_seed(0))
        >>> table = layerwise_metrics(Toy(), {"input_ids": ids}, batch_size=4, progress=False)
        >>> table.layers, sorted(table.columns)
        ([0, 1], ['dataset_entropy', 'prompt_entropy'])
    """
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a sequence of names, not one string; pass metrics=[{metrics!r}]")
    metrics = tuple(metrics)
    progress = check_flag("progress", progress)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty selection of {METRICS}; got {list(metrics)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    batch_size = int(batch_size)
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, numbers.Integral) or max_length < 1
    ):
        raise ValueError(f"max_length must be an integer >= 1 (tokens per text) or None; got {max_length!r}")
    alpha = check_alpha(alpha)
    if inputs is not None:
        if tokenizer is not None or texts is not None:
            raise ValueError("pass either inputs (tokenised) or tokenizer and texts, not both")
        batches, count = _batches_of_inputs(inputs, batch_size)
        source: Iterable[dict[str, torch.Tensor]] = batches
    elif tokenizer is not None and texts is not None:
        texts = _checked_texts(texts)
        count = len(texts)
        source = _batches_of_texts(tokenizer, texts, batch_size, max_length)
    else:
        raise ValueError("pass tokenised inputs, or a tokenizer and texts")
    extra = _check_model(model)
    try:
        device = next(model.parameters()).device
    except (AttributeError, StopIteration):
        device = torch.device("cpu")

    sums: dict[str, torch.Tensor] = {}
    pooled: list[torch.Tensor] = []
    seen = 0
    depth: tuple[int, int] | None = None
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            for index, batch in enumerate(_progress(source, progress, math.ceil(count / batch_size))):  # type: ignore[arg-type]
                batch = _right_padded({k: v.to(device) for k, v in batch.items()})
                hidden = _hidden_states(model, batch, extra)
                shape = (len(hidden), hidden[0].shape[-1]) if hidden else (0, 0)
                if depth is None:
                    depth = shape
                elif shape != depth:
                    raise ValueError(
                        f"the model returned hidden states of batch {index} with {shape[0]} layers of width "
                        f"{shape[1]}, but {depth[0]} layers of width {depth[1]} for batch 0; it must return the "
                        "same layers for every input"
                    )
                mask = batch["attention_mask"]
                try:
                    if "prompt_entropy" in metrics:
                        s = lw.prompt_entropy(hidden, mask, alpha=alpha, normalization=normalization)
                        sums["prompt_entropy"] = sums.get("prompt_entropy", 0) + s.double().sum(1)
                    if "effective_rank" in metrics:
                        s = lw.prompt_entropy(hidden, mask, alpha=1.0, kernel="cosine", centre=True)
                        sums["effective_rank"] = sums.get("effective_rank", 0) + s.double().sum(1)
                    if "dataset_entropy" in metrics:
                        pooled.append(lw.pool(hidden, mask, pooling))
                except ValueError as err:
                    # the message counts sequences from the start of this batch
                    raise ValueError(
                        f"in the batch of sequences {seen} to {seen + mask.shape[0] - 1} of the input (its sequence "
                        f"i is sequence {seen} + i there): {err}"
                    ) from err
                seen += mask.shape[0]
                del hidden
    finally:
        if hasattr(model, "train"):
            model.train(was_training)

    columns: dict[str, list[float]] = {}
    layers = 0
    for name in metrics:
        if name == "prompt_entropy":
            values = sums[name] / seen
        elif name == "effective_rank":
            values = torch.exp(sums[name] / seen)
        else:
            vectors = torch.cat(pooled, 1)[:, :, None]  # (L, N, 1, d): N one-token sequences
            values = lw.dataset_entropy(vectors, alpha=alpha, normalization=normalization).double()
        columns[name] = [float(v) + 0.0 for v in values]  # + 0.0: an entropy of 0 is 0.0, not -0.0
        layers = len(columns[name])
    settings = {"alpha": alpha, "normalization": normalization, "pooling": pooling, "batch_size": batch_size}
    return LayerwiseTable(list(range(layers)), columns, seen, settings)
