"""The training loop of the OVSS example: CAT-Seg's solver with InfoCLIP (or a baseline) distillation.

A run is described by one YAML file (``examples/ovss/configs/*.yaml``, optionally ``base:`` another
file whose keys it overrides) plus ``key.sub=value`` overrides on the command line. Sections:

- ``model`` / ``optim``: :class:`~ovss.config.ModelConfig` / :class:`~ovss.config.OptimConfig`;
- ``data``: ``root``, ``train`` (registry name), ``crop_size``, ``min_size``, ``color_aug``, ``flip``,
  ``single_category_max_area``, ``num_workers``, ``limit``, ``synthetic`` (``{train: N, val: M}``:
  generate a synthetic dataset into ``root`` first), ``class_subset`` (train ids to keep as the
  vocabulary, train and eval; demos only);
- ``train``: ``max_iter``, ``batch_size`` (global), ``seed``, ``grad_clip`` (full-model norm, 0.01),
  ``amp`` (``auto`` = bf16 autocast on CUDA), ``checkpoint_period``, ``keep_checkpoints``,
  ``log_period``, ``eval_period``, ``device``;
- ``eval``: ``datasets``, ``mode`` (``sliding`` / ``whole``), ``limit``, ``kernel`` / ``out_res``
  (sliding window and canvas: 384 / 640);
- ``output_dir``.

Exact resumption: the data order and every augmentation are pure functions of ``(seed, iteration)``
(:class:`ResumableBatchSampler`), and a checkpoint holds the model (without the frozen teacher, which
is rebuilt from the pretrained weights), AdamW, the cosine schedule, the iteration and the RNG states.
Multi-GPU: run under ``torchrun``; each rank takes its share of the global batch and DDP averages
the gradients.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from .config import ModelConfig, OptimConfig, load_yaml
from .data import DATASETS, SegmentationDataset, collate
from .evaluation import evaluate_dataset, write_results
from .model import OVSSModel
from .optim import param_groups
from .transforms import TrainTransform

__all__ = [
    "DEFAULTS",
    "ResumableBatchSampler",
    "Trainer",
    "apply_overrides",
    "cosine_factor",
    "load_config",
]

DEFAULTS: dict[str, Any] = {
    "output_dir": "output/ovss",
    "data": {
        "root": "datasets",
        "train": "coco_stuff_train",
        "crop_size": 384,
        "min_size": None,
        "color_aug": True,
        "flip": True,
        "single_category_max_area": 1.0,
        "num_workers": 4,
        "limit": None,
        "synthetic": None,
        "class_subset": None,
    },
    "train": {
        "max_iter": 80000,
        "batch_size": 4,
        "seed": 0,
        "grad_clip": 0.01,
        "amp": "auto",
        "checkpoint_period": 5000,
        "keep_checkpoints": 2,
        "log_period": 20,
        "eval_period": 0,
        "device": "auto",
        "find_unused_parameters": True,  # the dense last block never uses its query weights
        "progress": True,
        "plots": False,
    },
    "eval": {
        "datasets": ["ade847", "pc459", "ade150", "pc59", "voc20", "voc20b"],
        "mode": "sliding",
        "limit": None,
        "kernel": 384,
        "out_res": 640,
    },
}


# --------------------------------------------------------------------------- configuration
def _merge(base: dict, over: dict) -> dict:
    """Deep merge; an ``options`` mapping (a distiller's keyword options) replaces the base's whole."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"config files include each other in a cycle: {[str(p) for p in (*seen, path)]}")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else list(base)
    merged: dict = {}
    for b in bases:
        merged = _merge(merged, _read_with_bases((path.parent / b), (*seen, path)))
    return _merge(merged, data)


def apply_overrides(config: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested config dict.

    Example:
        >>> apply_overrides({"train": {"max_iter": 10}}, ["train.max_iter=5", "model.distill.name=none"])
        {'train': {'max_iter': 5}, 'model': {'distill': {'name': 'none'}}}
    """
    import yaml

    out = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> dict:
    """The full run configuration: :data:`DEFAULTS` ← the file (and its ``base:`` files) ← overrides."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        cfg = _merge(cfg, _read_with_bases(Path(path)))
    cfg = apply_overrides(cfg, overrides)
    known = {"model", "optim", "data", "train", "eval", "output_dir"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown top-level config section(s) {unknown}; known: {sorted(known)}")
    for section in ("data", "train", "eval"):
        extra = sorted(set(cfg[section]) - set(DEFAULTS[section]))
        if extra:
            raise ValueError(
                f"unknown key(s) {extra} in config section {section!r}; known: {sorted(DEFAULTS[section])}"
            )
    if cfg["data"]["train"] not in DATASETS:
        raise ValueError(f"data.train={cfg['data']['train']!r} is not a dataset; known: {sorted(DATASETS)}")
    for name in cfg["eval"]["datasets"] or []:
        if name not in DATASETS:
            raise ValueError(f"eval.datasets holds unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return cfg


def build_model(cfg: dict, *, distributed: bool = False) -> OVSSModel:
    """The :class:`OVSSModel` of a run configuration (registers the tiny test CLIP when named).

    With ``distributed`` and InfoCLIP, ``gather=True`` is set unless the config says otherwise: the
    Gram matrices then span the global batch (4 images over all GPUs, as on one GPU) instead of each
    rank's share (one image per GPU in the 4-GPU recipe, where a batch Gram would be 1x1).
    """
    mcfg = ModelConfig.from_dict(cfg.get("model"))
    if distributed and mcfg.distill.name == "infoclip":
        mcfg.distill.options.setdefault("gather", True)
    from .testing import TINY_CLIP, register_tiny_clip

    if mcfg.clip.model_name == TINY_CLIP:
        register_tiny_clip()
    return OVSSModel(mcfg)


# --------------------------------------------------------------------------- schedule and data order
def cosine_factor(iteration: int, max_iter: int) -> float:
    """detectron2's ``WarmupCosineLR`` factor without warm-up: ``(1 + cos(pi * it / max_iter)) / 2``."""
    return 0.5 * (1.0 + math.cos(math.pi * iteration / max_iter))


class ResumableBatchSampler(Sampler):
    """Per-iteration batches of ``(index, seed)`` keys, a pure function of ``(seed, iteration)``.

    The global sample stream is epoch after epoch of ``torch.randperm(n)`` permutations (generator
    seeded ``seed + epoch``); iteration ``i`` takes stream positions ``[i*B, (i+1)*B)`` and rank ``r``
    of ``world`` those with position ``% world == r``. Each sample's augmentation seed is
    ``hash((seed, position))``, so resuming at iteration ``i`` replays exactly the same data.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int,
        start_iter: int,
        max_iter: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size % world:
            raise ValueError(
                f"train.batch_size={batch_size} must be divisible by the number of processes {world}"
            )
        self.n, self.batch, self.seed = num_samples, batch_size, seed
        self.start, self.stop, self.rank, self.world = start_iter, max_iter, rank, world
        self._perm: tuple[int, torch.Tensor] | None = None

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return int(self._perm[1][offset])

    def batch_keys(self, iteration: int) -> list[tuple[int, int]]:
        """The ``(index, augmentation seed)`` keys this rank loads at ``iteration``."""
        first = iteration * self.batch
        keys = []
        for pos in range(first + self.rank, first + self.batch, self.world):
            seed = int(np.random.SeedSequence([self.seed, pos]).generate_state(1)[0])
            keys.append((self._index(pos), seed))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.stop):
            yield self.batch_keys(it)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint_atomic(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then an atomic ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint named by ``<output_dir>/checkpoints/last_checkpoint``, if any."""
    pointer = Path(output_dir) / "checkpoints" / "last_checkpoint"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if path.is_file() else None


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Runs one configuration (see the module docstring).

    Args:
        cfg: a full config from :func:`load_config`.

    Example:
        >>> trainer = Trainer(load_config("examples/ovss/configs/demo.yaml"))  # doctest: +SKIP
        >>> metrics = trainer.train()  # doctest: +SKIP
    """

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        tcfg = cfg["train"]
        self.distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        device = tcfg["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and self.distributed:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        self.device = torch.device(device)
        amp = tcfg["amp"]
        self.amp = (self.device.type == "cuda") if amp == "auto" else amp in (True, "bf16", "bfloat16")
        self.output_dir = Path(cfg["output_dir"])
        self.is_main = self.rank == 0
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(_dump_yaml(cfg))

        dcfg = cfg["data"]
        if dcfg.get("synthetic") and self.is_main:
            self._make_synthetic(dcfg)
        if self.distributed:
            dist.barrier()
        self.transform = TrainTransform(
            crop_size=dcfg["crop_size"],
            min_size=dcfg["min_size"],
            single_category_max_area=dcfg["single_category_max_area"],
            color_aug=dcfg["color_aug"],
            flip=dcfg["flip"],
        )
        self.train_set = SegmentationDataset(
            dcfg["root"],
            dcfg["train"],
            transform=self.transform,
            limit=dcfg["limit"],
            class_subset=dcfg["class_subset"],
        )

        torch.manual_seed(
            tcfg["seed"]
        )  # random-init CLIP (tests) and the decoder: identical on every rank/resume
        self.model = build_model(cfg, distributed=self.distributed).to(self.device)
        self.optim_cfg = OptimConfig.from_dict(cfg.get("optim"))
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, self.optim_cfg),
            lr=self.optim_cfg.base_lr,
            weight_decay=self.optim_cfg.weight_decay,
        )
        max_iter = int(tcfg["max_iter"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: cosine_factor(it, max_iter)
        )
        self.ddp_model: torch.nn.Module = self.model
        if self.distributed:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(tcfg["find_unused_parameters"]),
            )
        self.iteration = 0
        self.history: list[dict] = []

    @staticmethod
    def _make_synthetic(dcfg: dict) -> None:
        from .synthetic import write_synthetic_dataset

        root = Path(dcfg["root"])
        syn = dict(dcfg["synthetic"])
        marker = root / ".synthetic_done"
        if marker.is_file() and marker.read_text() == json.dumps(syn, sort_keys=True):
            return
        splits = {dcfg["train"]: int(syn.get("train", 48))}
        for name in syn.get("eval_datasets", ["coco_stuff_val"]):
            splits[name] = int(syn.get("val", 12))
        write_synthetic_dataset(root, splits=splits, seed=int(syn.get("seed", 0)))
        marker.write_text(json.dumps(syn, sort_keys=True))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),  # noqa: NPY002 (the global state, for code that uses it)
            "config": self.cfg,
            "history": self.history,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (model, optimizer, schedule, iteration, RNG)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])  # noqa: NPY002
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = list(state.get("history", []))

    def save_checkpoint(self, name: str | None = None) -> Path | None:
        """Atomically write ``checkpoints/iter_XXXXXXX.pth`` and point ``last_checkpoint`` at it."""
        if not self.is_main:
            return None
        ckpt_dir = self.output_dir / "checkpoints"
        name = name or f"iter_{self.iteration:07d}.pth"
        path = ckpt_dir / name
        save_checkpoint_atomic(self.state_dict(), path)
        tmp = ckpt_dir / ".last_checkpoint.tmp"
        tmp.write_text(name)
        os.replace(tmp, ckpt_dir / "last_checkpoint")
        keep = int(self.cfg["train"]["keep_checkpoints"])
        periodic = sorted(ckpt_dir.glob("iter_*.pth"))
        for old in periodic[:-keep] if keep > 0 else []:
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` (default: the output dir's last checkpoint); ``False`` if there is none."""
        path = Path(path) if path else last_checkpoint(self.output_dir)
        if path is None or not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.load_state_dict(state)
        return True

    # ------------------------------------------------------------------ loop
    def _loader(self) -> DataLoader:
        tcfg = self.cfg["train"]
        sampler = ResumableBatchSampler(
            len(self.train_set),
            int(tcfg["batch_size"]),
            seed=int(tcfg["seed"]),
            start_iter=self.iteration,
            max_iter=int(tcfg["max_iter"]),
            rank=self.rank,
            world=self.world,
        )
        workers = int(self.cfg["data"]["num_workers"])
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimisation step; returns the logged scalars."""
        images = batch["images"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        class_names = self.train_set.class_names
        self.ddp_model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.ddp_model(images, class_names, labels)
        loss = out.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {float(loss)} at iteration {self.iteration}: {out.losses}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = float(self.cfg["train"]["grad_clip"] or 0)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip) if clip > 0 else torch.tensor(float("nan"))
        groups = self.optimizer.param_groups
        lr = next((g["lr"] for g in groups if g.get("name") == "decoder"), groups[0]["lr"])  # base lr
        self.optimizer.step()
        self.scheduler.step()
        logged = {k: float(v.detach()) for k, v in out.losses.items()}
        logged.update(loss=float(loss.detach()), grad_norm=float(grad_norm), lr=lr)
        return logged

    def evaluate(self, datasets: Sequence[str] | None = None) -> dict[str, dict]:
        """Evaluate on ``eval.datasets`` (main process only); writes ``results.json`` / ``results.md``."""
        ecfg = self.cfg["eval"]
        names = list(datasets if datasets is not None else ecfg["datasets"] or [])
        results: dict[str, dict] = {}
        if self.is_main:
            for name in names:
                ds = SegmentationDataset(
                    self.cfg["data"]["root"], name, class_subset=self.cfg["data"]["class_subset"]
                )
                results[name] = evaluate_dataset(
                    self.model,
                    ds,
                    mode=ecfg["mode"],
                    kernel=int(ecfg["kernel"]),
                    out_res=int(ecfg["out_res"]),
                    amp=self.amp,
                    limit=ecfg["limit"],
                    progress=bool(self.cfg["train"]["progress"]),
                )
            if results:
                write_results(results, self.output_dir, row_name=f"this run (iter {self.iteration})")
        if self.distributed:
            dist.barrier()
        return results

    def train(self) -> dict[str, Any]:
        """Train to ``train.max_iter`` (from the current iteration), evaluate, write the outputs.

        Returns:
            ``metrics.json``'s content: ``mIoU`` (mean over the evaluated datasets), per-dataset mIoU,
            the final losses, the iteration count and timing.
        """
        tcfg = self.cfg["train"]
        max_iter = int(tcfg["max_iter"])
        writer = None
        jsonl = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.output_dir / "tensorboard"))
            jsonl = open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8")
        bar = None
        if self.is_main and tcfg["progress"]:
            from tqdm import tqdm

            bar = tqdm(total=max_iter, initial=self.iteration, desc="train", dynamic_ncols=True)
        start = time.perf_counter()
        start_iter = self.iteration
        last: dict[str, float] = {}
        ckpt_period = int(tcfg["checkpoint_period"] or 0)
        eval_period = int(tcfg["eval_period"] or 0)
        log_period = max(1, int(tcfg["log_period"]))
        try:
            for batch in self._loader():
                last = self.train_step(batch)
                self.iteration += 1
                if self.is_main:
                    if self.iteration % log_period == 0 or self.iteration == max_iter:
                        record = {"iteration": self.iteration, **last}
                        self.history.append(record)
                        jsonl.write(json.dumps(record) + "\n")
                        jsonl.flush()
                        for k, v in last.items():
                            writer.add_scalar(f"train/{k}", v, self.iteration)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{last['lr']:.2e}")
                if ckpt_period and self.iteration % ckpt_period == 0 and self.iteration < max_iter:
                    self.save_checkpoint()
                if eval_period and self.iteration % eval_period == 0 and self.iteration < max_iter:
                    res = self.evaluate()
                    if self.is_main:
                        for name, r in res.items():
                            writer.add_scalar(f"eval/{name}/mIoU", r["mIoU"], self.iteration)
                            jsonl.write(
                                json.dumps({"iteration": self.iteration, "eval": name, "mIoU": r["mIoU"]})
                                + "\n"
                            )
        finally:
            if bar is not None:
                bar.close()
        train_seconds = time.perf_counter() - start
        final = self.save_checkpoint("model_final.pth") if self.iteration >= max_iter else None
        results = self.evaluate()
        metrics: dict[str, Any] = {}
        if self.is_main:
            per = {n: r["mIoU"] for n, r in results.items()}
            metrics = {
                "mIoU": float(np.mean(list(per.values()))) if per else float("nan"),
                "per_dataset_mIoU": per,
                "iterations": self.iteration,
                "trained_iterations_this_run": self.iteration - start_iter,
                "train_seconds": train_seconds,
                "final_losses": last,
                "checkpoint": str(final) if final else None,
            }
            (self.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
            for name, r in results.items():
                writer.add_scalar(f"eval/{name}/mIoU", r["mIoU"], self.iteration)
            writer.close()
            jsonl.close()
            if tcfg["plots"]:
                from .plots import make_run_plots

                metrics["plots"] = [str(p) for p in make_run_plots(self, results)]
                (self.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


def _dump_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False)
