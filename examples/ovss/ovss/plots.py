"""Figures of an OVSS run: training curves, prediction overlays, LPAM alignment maps (paper Fig. 4)
and a t-SNE of dense embeddings coloured by class (paper Fig. 3). All use matplotlib's Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "alignment_and_cosine_maps",
    "dense_embeddings",
    "make_run_plots",
    "plot_alignment_heatmaps",
    "plot_prediction_overlays",
    "plot_training_curves",
    "plot_tsne",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_path: str | Path) -> Path:
    """Lay out, write (110 dpi) and close a figure."""
    fig.tight_layout()
    out = Path(out_path)
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def _palette(n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    pal = rng.integers(40, 256, (max(n, 1), 3)).astype(np.uint8)
    return np.concatenate([pal, np.zeros((1, 3), np.uint8)])  # last colour: ignore (black)


def _colorize(label: np.ndarray, n: int, ignore: int = 255) -> np.ndarray:
    pal = _palette(n)
    idx = np.where((label == ignore) | (label >= n), n, label)
    return pal[idx]


def plot_training_curves(metrics_jsonl: str | Path, out_path: str | Path) -> Path:
    """Loss terms and learning rate against the iteration, from a run's ``metrics.jsonl`` (its last run:
    `ovss.run_log.read_metrics`)."""
    from .run_log import read_metrics

    plt = _plt()
    rows = read_metrics(metrics_jsonl)
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval" in r]
    fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(13 if evals else 9, 3.5))
    its = [r["iteration"] for r in train]
    for key in sorted({k for r in train for k in r if k.startswith("loss")}):
        axes[0].plot(its, [r.get(key, np.nan) for r in train], label=key)
    axes[0].set_xlabel("iteration")
    axes[0].set_title("losses")
    axes[0].legend(fontsize=7)
    axes[1].plot(its, [r["lr"] for r in train])
    axes[1].set_xlabel("iteration")
    axes[1].set_title("learning rate (decoder)")
    if evals:
        for name in sorted({r["eval"] for r in evals}):
            pts = [(r["iteration"], r["mIoU"]) for r in evals if r["eval"] == name]
            axes[2].plot(*zip(*pts), marker="o", label=name)
        axes[2].set_title("mIoU")
        axes[2].legend(fontsize=7)
    return _save(fig, out_path)


@torch.no_grad()
def plot_prediction_overlays(
    model,
    dataset,
    out_path: str | Path,
    *,
    num: int = 4,
    pooling_size: tuple[int, int] | None = (1, 1),
    **protocol: Any,
) -> Path:
    """Image, ground truth, prediction (same class colours) and prediction over the image, per sample.

    Args:
        model: the segmentor.
        dataset: its samples (the first ``num`` are drawn).
        out_path: the PNG written.
        num: samples drawn.
        pooling_size: class-aggregation pooling at evaluation (`ovss.evaluation.eval_pooling`).
        **protocol: the test protocol's keywords of `ovss.evaluation.predict_probabilities` (``mode``,
            ``kernel``, ``out_res``, ``min_size``, ``max_size``, ``size_divisibility``; CAT-Seg's by
            default; `ovss.config.EvalConfig.protocol` gives a run's).
    """
    from .evaluation import eval_pooling, model_logits_fn, predict_probabilities

    plt = _plt()
    model.eval()
    fn = model_logits_fn(model, dataset.class_names)
    num = min(num, len(dataset))
    k = dataset.num_eval_classes
    fig, axes = plt.subplots(num, 4, figsize=(12, 3 * num), squeeze=False)
    for i in range(num):
        s = dataset[i]
        img = s["image"].permute(1, 2, 0).numpy()
        label = s["label"].numpy()
        with eval_pooling(model, pooling_size):
            probs = predict_probabilities(fn, s["image"], label.shape, **protocol)
        pred = probs.argmax(0).numpy()
        if dataset.background_from is not None:
            pred = np.minimum(pred, dataset.background_from)
        axes[i][0].imshow(img)
        axes[i][1].imshow(_colorize(label, k))
        axes[i][2].imshow(_colorize(pred, k))
        axes[i][3].imshow((0.5 * img + 0.5 * _colorize(pred, k)).astype(np.uint8))
        for ax, title in zip(axes[i], ("image", "ground truth", "prediction", "overlay")):
            ax.set_title(title if i == 0 else "")
            ax.axis("off")
    return _save(fig, out_path)


@torch.no_grad()
def dense_embeddings(model, images: torch.Tensor, class_names: Sequence[str], *, teacher: bool = False):
    """Dense CLIP features ``(B, d, h, w)`` and class embeddings ``(T, d)`` (prompt-averaged, L2-normalised)."""
    device = next(model.parameters()).device
    x = model.preprocess(images.to(device))
    if teacher:
        if model.teacher is None:
            raise ValueError("this model has no teacher (distill.name='none')")
        feats = model.teacher.encode_image_dense(
            x.to(model.teacher.dtype if hasattr(model.teacher, "dtype") else x.dtype)
        )
        text = model.teacher_class_embeddings(class_names)
    else:
        feats = model.clip.encode_image_dense(x)
        text = model.class_embeddings(class_names)
    return feats.dense.float(), F.normalize(text.float().mean(dim=1), dim=-1)


def _alignment(model):
    """The alignment map the model's distiller exposes for figures (`infoclip.registry`), or ``None``."""
    return model.config.distill.spec().alignment if model.distiller is not None else None


@torch.no_grad()
def alignment_and_cosine_maps(
    model, image: torch.Tensor, class_names: Sequence[str], *, teacher: bool = False
):
    """The distiller's alignment map ``R`` (InfoCLIP: LPAM's) and the raw cosine cost map, both ``(T, h, w)``,
    for one ``(3, H, W)`` image.

    Raises:
        ValueError: the model's distiller exposes no alignment map (`infoclip.DistillerSpec.alignment`).
    """
    alignment = _alignment(model)
    if alignment is None:
        raise ValueError(
            f"alignment maps need a distiller that exposes one; distill.name={model.config.distill.name!r} does not"
        )
    dense, text = dense_embeddings(model, image[None], class_names, teacher=teacher)
    h, w = dense.shape[-2:]
    r = alignment.compute(model.distiller, dense, text)[0].T.reshape(len(class_names), h, w)
    cos = torch.einsum("dhw,td->thw", F.normalize(dense[0], dim=0), text)
    return r.cpu(), cos.cpu()


def plot_alignment_heatmaps(
    model, image: torch.Tensor, class_names: Sequence[str], out_path: str | Path
) -> Path:
    """Per class: the distiller's alignment map next to the raw cosine cost map (InfoCLIP: LPAM's, paper
    Fig. 4)."""
    plt = _plt()
    model.eval()
    r, cos = alignment_and_cosine_maps(model, image, class_names)
    t = len(class_names)
    fig, axes = plt.subplots(t, 3, figsize=(7.5, 2.4 * t), squeeze=False)
    img = image.permute(1, 2, 0).numpy().astype(np.uint8)
    for c in range(t):
        axes[c][0].imshow(img)
        axes[c][0].set_ylabel(class_names[c].split(",")[0], fontsize=8)
        axes[c][1].imshow(r[c].numpy(), cmap="viridis")
        axes[c][2].imshow(cos[c].numpy(), cmap="viridis")
        for ax in axes[c]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("image")
    axes[0][1].set_title(_alignment(model).title)
    axes[0][2].set_title("cosine cost")
    return _save(fig, out_path)


@torch.no_grad()
def plot_tsne(
    model, dataset, out_path: str | Path, *, num_images: int = 8, max_points: int = 1500, seed: int = 0
) -> Path:
    """t-SNE (scikit-learn) of the student's dense patch embeddings, coloured by ground-truth class (Fig. 3)."""
    from sklearn.manifold import TSNE

    plt = _plt()
    model.eval()
    feats, labels = [], []
    for i in range(min(num_images, len(dataset))):
        s = dataset[i]
        dense, _ = dense_embeddings(model, s["image"][None].float(), dataset.class_names)
        h, w = dense.shape[-2:]
        lab = F.interpolate(s["label"][None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
        keep = lab.flatten() < dataset.num_eval_classes
        feats.append(dense[0].flatten(1).T[keep].cpu().numpy())
        labels.append(lab.flatten()[keep].numpy())
    x = np.concatenate(feats)
    y = np.concatenate(labels)
    rng = np.random.default_rng(seed)
    if len(x) > max_points:
        idx = rng.choice(len(x), max_points, replace=False)
        x, y = x[idx], y[idx]
    emb = TSNE(
        n_components=2, perplexity=min(30, max(2, len(x) // 4)), init="pca", random_state=seed
    ).fit_transform(x / np.linalg.norm(x, axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    pal = _palette(dataset.num_eval_classes) / 255.0
    names = dataset.eval_class_names
    for c in np.unique(y):
        m = y == c
        ax.scatter(emb[m, 0], emb[m, 1], s=6, color=pal[c], label=names[c].split(",")[0])
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title("t-SNE of dense CLIP embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, out_path)


def make_run_plots(output_dir: str | Path, model, config, results: dict | None = None) -> list[Path]:
    """All figures of a finished run into ``<output_dir>/plots`` (alignment maps only for a distiller that
    exposes one: InfoCLIP's LPAM).

    Args:
        output_dir: the run's folder (its ``metrics.jsonl`` gives the curves, one run).
        model: the trained `ovss.model.OVSSModel`.
        config: the run's `ovss.config.RunConfig` (data root, class subset, evaluation).
        results: evaluation results by dataset; the first one's data are drawn (default: the first
            of ``config.eval.datasets``).
    """
    from .data import open_dataset

    out = Path(output_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_training_curves(Path(output_dir) / "metrics.jsonl", out / "training_curves.png")]
    names = list(results or {}) or list(config.eval.datasets)
    if not names:
        return paths
    ds = open_dataset(config, names[0])
    ecfg = config.eval
    paths.append(
        plot_prediction_overlays(
            model, ds, out / "predictions.png", **ecfg.protocol(), pooling_size=ecfg.pooling_size
        )
    )
    if _alignment(model) is not None:
        paths.append(
            plot_alignment_heatmaps(model, ds[0]["image"].float(), ds.class_names, out / "lpam_alignment.png")
        )
    paths.append(plot_tsne(model, ds, out / "tsne.png"))
    return paths
