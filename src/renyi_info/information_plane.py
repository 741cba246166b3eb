r"""Information-plane trajectories of a PyTorch model during training.

For chosen layers $T_l$ of a model, `InformationPlane` records the matrix-based Rényi
mutual informations $I(X;T_l)$ and $I(T_l;Y)$ on a fixed probe batch ``(x, y)`` whenever
`InformationPlane.record` is called (typically once per epoch), and plots the trajectories in
the $(I(X;T), I(T;Y))$ plane coloured by epoch (Tishby & Zaslavsky 2015; with the
matrix-based estimator: Yu & Príncipe 2019, Yu et al. 2020, Wickstrøm et al. 2019).

Recording runs the model once in evaluation mode under ``torch.no_grad()`` with forward hooks on the
chosen layers; the hooks are removed and every submodule's ``training`` flag is restored afterwards,
so recording never changes the model, its gradients or its mode. Layer outputs are flattened to
``(n, -1)``. The Grams of ``x`` and ``y`` are computed once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._units import to_base
from ._validation import autocast_disabled, check_alpha, check_base, resolve_method
from .gram_level import gram_entropy
from .kernels import gram, takes_labels, takes_sigma
from .types import BandwidthRule, KernelName

__all__ = ["InformationPlane"]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


class InformationPlane:
    r"""Record $I(X;T_l)$ and $I(T_l;Y)$ of chosen layers over training, and plot them.

    $$
    I_\alpha(X;T) = S_\alpha(A_X) + S_\alpha(A_T) - S_\alpha(A_X, A_T), \qquad
    I_\alpha(T;Y) = S_\alpha(A_T) + S_\alpha(A_Y) - S_\alpha(A_T, A_Y)
    $$

    with trace-normalised Grams of the probe inputs, the layer outputs and the targets (bits by
    default). The defaults follow the information-plane literature with this estimator: alpha = 1.01
    and Gaussian kernels on inputs and layers with the median-distance bandwidth evaluated anew at
    every record (dimension-aware, unlike Silverman's $n^{-1/(4+d)}$ for wide layers), and the
    label kernel on integer class targets.

    Args:
        model: the network; called as ``model(x)``.
        layers: names of submodules (as in ``model.named_modules()``) whose outputs are the
            representations $T_l$, or a mapping ``{label: module}``. A module returning a tuple
            contributes its first element.
        x: the probe inputs ``(n, ...)``, fed to the model as they are (same device as the model).
        y: the probe targets ``(n,)`` integer class labels (``kernel_y="label"``) or ``(n, d_y)`` features.
        alpha: Rényi order (default 1.01).
        kernel_x: kernel of the inputs (flattened to ``(n, -1)``).
        kernel_t: kernel of the layer outputs.
        kernel_y: kernel of the targets; ``"label"`` for class labels.
        sigma_x: bandwidth of ``kernel_x`` if Gaussian: a number, ``"median"`` or ``"silverman"``.
        sigma_t: bandwidth of ``kernel_t`` if Gaussian (evaluated per layer and record).
        sigma_y: bandwidth of ``kernel_y`` if Gaussian.
        base: logarithm base of the recorded values (2 = bits).
        compute_dtype: dtype of the Grams and spectra (float64 by default: n is small and accuracy cheap).

    Raises:
        ValueError: unknown layer names (the message lists the available ones), no layers, or
            ``x``/``y`` with different numbers of samples.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from renyi_info import InformationPlane
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
        >>> plane = InformationPlane(model, ["1", "2"], x, y)
        >>> point = plane.record(epoch=0)
        >>> sorted(point)
        ['1', '2']
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | Mapping[str, nn.Module],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        alpha: float = 1.01,
        kernel_x: KernelName = "gaussian",
        kernel_t: KernelName = "gaussian",
        kernel_y: KernelName = "label",
        sigma_x: float | BandwidthRule | None = "median",
        sigma_t: float | BandwidthRule | None = "median",
        sigma_y: float | BandwidthRule | None = None,
        base: float = 2.0,
        compute_dtype: torch.dtype = torch.float64,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.model = model
        self.layers = self._resolve(model, layers)
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("x and y must be torch.Tensor probe batches")
        if x.dim() < 1 or y.dim() < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must hold the same number n of probe samples along dim 0; got x {tuple(x.shape)} "
                f"and y {tuple(y.shape)}"
            )
        self.x, self.y = x, y
        self.alpha, self.base, self.compute_dtype = check_alpha(alpha), check_base(base), compute_dtype
        self._method = resolve_method("auto", self.alpha)
        self.kernel_t, self.sigma_t = kernel_t, sigma_t if takes_sigma(kernel_t) else None
        x_flat = _flat(x.detach())
        self._kx = gram(
            x_flat,
            kernel_x,
            sigma=sigma_x if takes_sigma(kernel_x) else None,
            compute_dtype=compute_dtype,
        )
        y_in = y.detach() if takes_labels(kernel_y) else _flat(y.detach())
        self._ky = gram(
            y_in,
            kernel_y,
            sigma=sigma_y if takes_sigma(kernel_y) else None,
            compute_dtype=compute_dtype,
        )
        self.entropy_x = self._entropy(self._kx, "x")
        self.entropy_y = self._entropy(self._ky, "y")
        self.history: list[dict[str, Any]] = []

    def _entropy(self, k: torch.Tensor, name: str) -> float:
        """Entropy in the chosen base of a Gram built here (checked when it was built); autocast off."""
        with autocast_disabled():
            return float(to_base(gram_entropy(k, self.alpha, self._method, name), self.base))

    @staticmethod
    def _resolve(model: nn.Module, layers: Sequence[str] | Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        if isinstance(layers, Mapping):
            resolved = dict(layers)
        else:
            if isinstance(layers, str):
                layers = [layers]
            named = dict(model.named_modules())
            missing = [name for name in layers if name not in named]
            if missing:
                available = [name for name in named if name]
                raise ValueError(
                    f"layers {missing} are not submodules of the model; available names: {available}"
                )
            resolved = {name: named[name] for name in layers}
        if not resolved:
            raise ValueError("layers must name at least one submodule")
        for name, module in resolved.items():
            if not isinstance(module, nn.Module):
                raise TypeError(f"layers[{name!r}] must be an nn.Module; got {type(module).__name__}")
        return resolved

    def activations(self) -> dict[str, torch.Tensor]:
        """The chosen layers' outputs on the probe batch, ``{name: (n, -1)}`` (eval mode, no grad).

        The mode of every submodule is restored and the hooks removed, even if the forward raises.
        """
        outputs: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def capture(_module: nn.Module, _inputs: Any, output: Any) -> None:
                out = output[0] if isinstance(output, (tuple, list)) else output
                outputs[name] = _flat(out.detach())

            return capture

        modes = [(m, m.training) for m in self.model.modules()]
        handles = [module.register_forward_hook(hook(name)) for name, module in self.layers.items()]
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(self.x)
        finally:
            for handle in handles:
                handle.remove()
            for module, mode in modes:
                module.training = mode
        missing = [name for name in self.layers if name not in outputs]
        if missing:
            raise RuntimeError(f"layers {missing} were not called in model(x); they have no output to record")
        return outputs

    def record(self, epoch: float | None = None, **extra: float) -> dict[str, tuple[float, float]]:
        """Evaluate $(I(X;T_l), I(T_l;Y))$ for every layer and append them to `history`.

        Args:
            epoch: the x-coordinate of the colour scale (default: the number of records so far).
            **extra: further numbers to store with the record (e.g. ``accuracy=0.93``).

        Returns:
            ``{layer: (I(X;T), I(T;Y))}`` in the chosen base.
        """
        acts = self.activations()
        point: dict[str, tuple[float, float]] = {}
        for name, t in acts.items():
            sigma = self.sigma_t if takes_sigma(self.kernel_t) else None
            kt = gram(t, self.kernel_t, sigma=sigma, compute_dtype=self.compute_dtype).to(self._kx.device)
            # S(X) and S(Y) are cached: three spectra per layer instead of six
            s_t = self._entropy(kt, name)
            s_xt = self._entropy(self._kx * kt, f"the Hadamard product of x and {name}")
            s_ty = self._entropy(kt * self._ky, f"the Hadamard product of {name} and y")
            point[name] = (self.entropy_x + s_t - s_xt, s_t + self.entropy_y - s_ty)
        self.history.append(
            {
                "epoch": float(len(self.history) if epoch is None else epoch),
                "layers": {k: {"I_XT": v[0], "I_TY": v[1]} for k, v in point.items()},
                **{k: float(v) for k, v in extra.items()},
            }
        )
        return point

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, the entropies of ``X`` and ``Y``, and every record."""
        return {
            "alpha": self.alpha,
            "base": self.base,
            "n": int(self.x.shape[0]),
            "layers": list(self.layers),
            "S_X": self.entropy_x,
            "S_Y": self.entropy_y,
            "records": self.history,
        }

    def save_json(self, path: str | Path) -> Path:
        """Write `to_dict` to ``path`` (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, path: str | Path | None = None, *, title: str | None = None, cmap: str = "viridis") -> Any:
        """Plot each layer's trajectory in the information plane, points coloured by epoch.

        Needs matplotlib (``pip install 'renyi-info[plot]'``); it is imported here, not at import
        time, and no pyplot global state is touched (the figure is a bare ``matplotlib.figure.Figure``).

        Args:
            path: if given, the figure is saved there (PNG by extension; folders are created).
            title: the axes title.
            cmap: matplotlib colormap name for the epochs.

        Returns:
            The ``matplotlib.figure.Figure``.

        Raises:
            ImportError: matplotlib is not installed (the message says how to install it).
            ValueError: nothing has been recorded yet.
        """
        try:
            from matplotlib import colormaps
            from matplotlib.cm import ScalarMappable
            from matplotlib.collections import Collection
            from matplotlib.colors import Normalize
            from matplotlib.figure import Figure
        except ImportError as err:  # pragma: no cover - exercised with matplotlib hidden
            raise ImportError(
                "InformationPlane.plot needs matplotlib; install it with pip install 'renyi-info[plot]' "
                "(or pip install matplotlib)"
            ) from err
        if not self.history:
            raise ValueError("nothing to plot: call record() at least once first")
        epochs = [r["epoch"] for r in self.history]
        norm = Normalize(vmin=min(epochs), vmax=max(epochs) if max(epochs) > min(epochs) else min(epochs) + 1)
        colours = colormaps[cmap]
        fig = Figure(figsize=(6.4, 4.8), dpi=120)
        ax = fig.subplots()
        markers = "osD^v<>ph*"
        for idx, name in enumerate(self.layers):
            xs = [r["layers"][name]["I_XT"] for r in self.history]
            ys = [r["layers"][name]["I_TY"] for r in self.history]
            ax.plot(xs, ys, color="0.7", linewidth=0.8, zorder=1)
            ax.scatter(
                xs,
                ys,
                c=[colours(norm(e)) for e in epochs],
                marker=markers[idx % len(markers)],
                s=28,
                edgecolors="black",
                linewidths=0.3,
                zorder=2,
                label=name,
            )
        unit = (
            "bits"
            if self.base == 2.0
            else ("nats" if math.isclose(self.base, math.e) else f"log base {self.base:g}")
        )
        ax.set_xlabel(f"I(X;T) [{unit}]")
        ax.set_ylabel(f"I(T;Y) [{unit}]")
        if title:
            ax.set_title(title)
        legend = ax.legend(title="layer", fontsize=8, title_fontsize=8, loc="lower right")
        for handle in legend.legend_handles:
            if isinstance(handle, Collection):  # the scatter markers; white so that the layer marker reads
                handle.set_facecolor("white")
        fig.colorbar(ScalarMappable(norm=norm, cmap=colours), ax=ax, label="epoch")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path)
        return fig
