"""Information planes of a small MLP and a small CNN trained on scikit-learn's digits (CPU, minutes).

Run:  python examples/information_plane/run.py            (defaults: both models, 30 epochs)
      python examples/information_plane/run.py --epochs 5 --out /tmp/ip

Outputs go to ``output/information_plane`` (under the current folder, ignored by git) unless ``--out``
says otherwise; the figures committed in ``examples/information_plane/results`` were made with
``--out examples/information_plane/results``.

The 8x8 digits (1797 images, bundled with scikit-learn: no download) are split 70/30 into train and
test sets. A fixed probe batch of training images is used by :class:`renyi_info.InformationPlane` to
record I(X;T) and I(T;Y) of every hidden layer before training and after each epoch (alpha = 1.01,
Gaussian kernels with the median bandwidth on inputs and layers, the label kernel on the classes).
Writes ``<out>/<model>_information_plane.png`` and ``<out>/information_plane.json`` (every record,
plus train/test accuracy per epoch). Needs ``pip install 'renyi-info[examples]'`` (matplotlib,
scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from renyi_info import InformationPlane

HERE = Path(__file__).resolve().parent


def load_digits_tensors(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits as ``(N, 1, 8, 8)`` float images scaled to [0, 1] and int64 labels, split 70/30."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.7 * len(y))
    train, test = perm[:cut], perm[cut:]
    return x[train], y[train], x[test], y[test]


class MLP(nn.Module):
    """64 -> 32 -> 16 -> 10 with tanh (a bottlenecked stack, as in the information-plane literature)."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Sequential(nn.Linear(64, 32), nn.Tanh())
        self.fc2 = nn.Sequential(nn.Linear(32, 16), nn.Tanh())
        self.fc3 = nn.Sequential(nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.fc2(self.fc1(self.flatten(x))))


class CNN(nn.Module):
    """conv(8) -> pool -> conv(16) -> pool -> fc(32) -> fc(10) with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(16 * 2 * 2, 32), nn.ReLU())
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.conv2(self.conv1(x))))


MODELS = {"mlp": (MLP, ["fc1", "fc2", "fc3"]), "cnn": (CNN, ["conv1", "conv2", "fc1", "fc2"])}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean())
    model.train(was)
    return acc


def train_one(
    name: str, data: tuple, *, epochs: int, probe: int, batch: int, lr: float, seed: int, out: Path
) -> dict:
    """Train one model, recording its information plane before training and after every epoch."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    cls, layers = MODELS[name]
    model = cls()
    plane = InformationPlane(model, layers, x_train[:probe], y_train[:probe])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    plane.record(0, train_acc=accuracy(model, x_train, y_train), test_acc=accuracy(model, x_test, y_test))
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            optimiser.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            optimiser.step()
        plane.record(
            epoch, train_acc=accuracy(model, x_train, y_train), test_acc=accuracy(model, x_test, y_test)
        )
    plane.plot(out / f"{name}_information_plane.png", title=f"{name.upper()} on digits (n = {probe} probe)")
    summary = plane.to_dict()
    summary["final_train_acc"] = plane.history[-1]["train_acc"]
    summary["final_test_acc"] = plane.history[-1]["test_acc"]
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--probe", type=int, default=200, help="probe batch size n (default 200)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: small ops oversubscribe a busy machine)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("output") / "information_plane",
        help="output folder (default output/information_plane; the committed figures: "
        "examples/information_plane/results)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.probe < 2:
        parser.error("--epochs must be >= 1 and --probe >= 2")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(previous_threads)


def run(args: argparse.Namespace) -> dict:
    """Train every requested model and write the plots and the JSON summary into ``args.out``."""
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_digits_tensors(args.seed)
    results: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    out = args.out.resolve()
    results["settings"]["out"] = str(out.relative_to(HERE)) if out.is_relative_to(HERE) else str(out)
    for name in args.models:
        start = time.perf_counter()
        results[name] = train_one(
            name,
            data,
            epochs=args.epochs,
            probe=args.probe,
            batch=args.batch,
            lr=args.lr,
            seed=args.seed,
            out=args.out,
        )
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        final = results[name]["records"][-1]["layers"]
        print(
            f"{name}: {results[name]['seconds']} s, test accuracy {results[name]['final_test_acc']:.3f}; "
            + ", ".join(f"{k}: I(X;T)={v['I_XT']:.2f} I(T;Y)={v['I_TY']:.2f}" for k, v in final.items())
        )
    (args.out / "information_plane.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
