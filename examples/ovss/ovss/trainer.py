"""The training loop of the OVSS example: CAT-Seg's solver with InfoCLIP (or a baseline) distillation.

A run is one `ovss.config.RunConfig` (``examples/ovss/configs/*.yaml`` plus ``key.sub=value``
overrides, checked before any work: `ovss.config.load_config`). This module holds the loop;
the configuration, the checkpoint files and the run's log live in `ovss.config`,
`ovss.checkpoint` and `ovss.run_log`.

Exact resumption: the data order and every augmentation are pure functions of ``(seed, iteration)``
(`ResumableBatchSampler`), and a checkpoint holds the model (without the frozen teacher, which
is rebuilt from the pretrained weights), AdamW, the cosine schedule, the iteration, the RNG states
and the run's id. A resumed run rewinds ``metrics.jsonl`` to the checkpoint's iteration.
Multi-GPU: run under ``torchrun``; each rank takes its share of the global batch and DDP averages
the gradients.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from . import checkpoint as ckpt
from .config import RunConfig, apply_overrides, load_config, to_plain
from .data import collate, open_dataset
from .evaluation import evaluate_dataset, write_results
from .model import OVSSModel
from .optim import build_optimizer, fill_missing_grads_
from .run_log import MetricsLog, Progress, check_fresh_output_dir
from .transforms import TrainTransform

__all__ = [
    "DEFAULTS",
    "CheckpointHook",
    "EvalHook",
    "Hook",
    "MetricsHook",
    "ResumableBatchSampler",
    "Trainer",
    "apply_overrides",
    "build_model",
    "cosine_factor",
    "load_config",
]

#: The default run configuration as a plain dict (every key of every section).
DEFAULTS: dict[str, Any] = RunConfig().to_dict()


def build_model(cfg: RunConfig, *, distributed: bool = False) -> OVSSModel:
    """The `OVSSModel` of a run configuration (registers the tiny test CLIP when named).

    With ``distributed`` and a distiller that takes a ``gather`` option (InfoCLIP), ``gather=True`` is set
    unless the config says otherwise: the Gram matrices then span the global batch (4 images over all
    GPUs, as on one GPU) instead of each rank's share (one image per GPU in the 4-GPU recipe, where a
    batch Gram would be 1x1).
    """
    import copy

    mcfg = copy.deepcopy(cfg.model)
    if distributed and "gather" in mcfg.distill.spec().options:
        mcfg.distill.options.setdefault("gather", True)
    from .tiny_model import TINY_CLIP, register_tiny_clip

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


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Runs one configuration (see the module docstring).

    Args:
        cfg: a `ovss.config.RunConfig` (from `load_config`) or a plain nested mapping
            (checked by `RunConfig.from_dict`).

    Example:
        >>> trainer = Trainer(load_config("examples/ovss/configs/demo.yaml"))  # doctest: +SKIP
        >>> metrics = trainer.train()  # doctest: +SKIP
    """

    def __init__(self, cfg: RunConfig | Mapping[str, Any]) -> None:
        self.cfg = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
        tcfg, dcfg = self.cfg.train, self.cfg.data
        self.distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if tcfg.batch_size % self.world:
            raise ValueError(
                f"train.batch_size={tcfg.batch_size} must be divisible by the number of processes {self.world}"
            )
        device = tcfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and self.distributed:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        self.device = torch.device(device)
        self.amp = tcfg.bf16(self.device.type)
        self.output_dir = Path(self.cfg.output_dir)
        self.is_main = self.rank == 0
        self.run_id = uuid.uuid4().hex[:12]
        self.resumed_from: Path | None = None

        if dcfg.synthetic is not None and self.is_main:
            self._make_synthetic()
        if self.distributed:
            dist.barrier()
        self.transform = TrainTransform(
            crop_size=dcfg.crop_size,
            min_size=dcfg.min_size,
            single_category_max_area=dcfg.single_category_max_area,
            color_aug=dcfg.color_aug,
            flip=dcfg.flip,
            label_resize=dcfg.label_resize,
        )
        self.train_set = open_dataset(self.cfg, dcfg.train, transform=self.transform, limit=dcfg.limit)

        # random-init CLIP (tests, demo) and the decoder: identical on every rank and resume
        torch.manual_seed(tcfg.seed)
        self.model = build_model(self.cfg, distributed=self.distributed).to(self.device)
        self.optimizer = build_optimizer(self.model, self.cfg.optim)
        max_iter = tcfg.max_iter
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: cosine_factor(it, max_iter)
        )
        self.ddp_model: torch.nn.Module = self.model
        if self.distributed:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=tcfg.find_unused_parameters,
            )
        self.iteration = 0
        self.history: list[dict] = []

    def _make_synthetic(self) -> None:
        from .synthetic import write_synthetic_dataset

        dcfg = self.cfg.data
        assert dcfg.synthetic is not None
        syn = to_plain(dcfg.synthetic)
        root = Path(dcfg.root)
        marker = root / ".synthetic_done"
        if marker.is_file() and marker.read_text() == json.dumps(syn, sort_keys=True):
            return
        splits = {dcfg.train: dcfg.synthetic.train}
        for name in dcfg.synthetic.eval_datasets:
            splits[name] = dcfg.synthetic.val
        write_synthetic_dataset(root, splits=splits, seed=dcfg.synthetic.seed)
        marker.write_text(json.dumps(syn, sort_keys=True))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (tensors and plain values only)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": ckpt.numpy_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "run": self.run_id,
            "rng": rng,
            "config": self.cfg.to_dict(),
            "history": self.history,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict` (model, optimizer, schedule, iteration, RNG, run id)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        self.run_id = str(state["run"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        ckpt.set_numpy_rng_state(rng["numpy"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])
        self.history = list(state.get("history", []))

    def save_checkpoint(self, name: str | None = None) -> Path | None:
        """Atomically write ``checkpoints/iter_XXXXXXX.pth`` (or ``name``) and point ``last_checkpoint`` at it."""
        if not self.is_main:
            return None
        ckpt_dir = self.output_dir / "checkpoints"
        name = name or f"iter_{self.iteration:07d}.pth"
        path = ckpt.save_atomic(self.state_dict(), ckpt_dir / name)
        ckpt.write_pointer(ckpt_dir, name)
        keep = self.cfg.train.keep_checkpoints
        periodic = sorted(ckpt_dir.glob("iter_*.pth"))
        for old in periodic[:-keep] if keep > 0 else []:
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def export_model(self, path: str | Path | None = None) -> Path | None:
        """Write the model's weights for inference (``<output_dir>/model.pth``, loadable with
        ``torch.load(path, weights_only=True)``; `ovss.checkpoint.load_model_weights`)."""
        if not self.is_main:
            return None
        state = {
            "model": self.model.state_dict(),
            "model_config": self.cfg.model.to_dict(),
            "iteration": self.iteration,
            "run": self.run_id,
        }
        return ckpt.save_atomic(state, Path(path or self.output_dir / "model.pth"), fmt=ckpt.WEIGHTS_FORMAT)

    def resume(self, path: str | Path | None = None) -> bool:
        """Continue from ``path``, or (``None``) from the output folder's newest intact checkpoint.

        Returns:
            ``True`` if a checkpoint was loaded; ``False`` only when ``path`` is ``None`` and the
            output folder holds no checkpoint at all.

        Raises:
            ovss.checkpoint.CheckpointError: ``path`` is missing, unreadable or corrupt, or the output
                folder holds checkpoints of which none is intact (damaged ones are skipped with a
                warning when an older intact one exists).
        """
        if path is not None:
            path = Path(path)
            state = ckpt.load_checkpoint(path, map_location=self.device)
        else:
            found = ckpt.find_resume_checkpoint(self.output_dir, map_location=self.device)
            if found is None:
                return False
            path, state = found
        self.load_state_dict(state)
        self.resumed_from = path
        return True

    # ------------------------------------------------------------------ loop
    def _loader(self) -> DataLoader:
        tcfg = self.cfg.train
        sampler = ResumableBatchSampler(
            len(self.train_set),
            tcfg.batch_size,
            seed=tcfg.seed,
            start_iter=self.iteration,
            max_iter=tcfg.max_iter,
            rank=self.rank,
            world=self.world,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            num_workers=self.cfg.data.num_workers,
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
        if self.cfg.optim.decay_without_grad:
            fill_missing_grads_(self.optimizer)
        clip = self.cfg.train.grad_clip
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
        ecfg = self.cfg.eval
        names = list(datasets if datasets is not None else ecfg.datasets)
        results: dict[str, dict] = {}
        if self.is_main:
            for name in names:
                ds = open_dataset(self.cfg, name)
                results[name] = evaluate_dataset(
                    self.model,
                    ds,
                    **ecfg.protocol(),
                    pooling_size=ecfg.pooling_size,
                    amp=self.amp,
                    limit=ecfg.limit,
                    progress=self.cfg.train.progress,
                )
            if results:
                write_results(results, self.output_dir, row_name=f"this run (iter {self.iteration})")
        if self.distributed:
            dist.barrier()
        return results

    def _open_run(self) -> MetricsLog:
        """Claim the output folder for this run and open its log (main process)."""
        out = self.output_dir
        run_file = out / "run.json"
        fresh = self.resumed_from is None and self.iteration == 0
        if fresh:
            check_fresh_output_dir(out)
        elif run_file.is_file():
            owner = json.loads(run_file.read_text()).get("run")
            if owner != self.run_id:
                raise FileExistsError(
                    f"{out} holds run {owner}, but the checkpoint {self.resumed_from} belongs to run "
                    f"{self.run_id}: resume into that run's own output_dir, or into an empty folder"
                )
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temp_files(out / "checkpoints")
        ckpt.remove_stale_temp_files(out)
        (out / "run.json").write_text(json.dumps({"run": self.run_id}))
        (out / "config.yaml").write_text(_dump_yaml(self.cfg.to_dict()))
        return MetricsLog(out / "metrics.jsonl", self.run_id).open(
            resume_from=None if fresh else self.iteration
        )

    def train(self) -> dict[str, Any]:
        """Train to ``train.max_iter`` (from the current iteration), evaluate, write the outputs.

        The loop runs one `train_step` per batch and then the after-step hooks, in order: `MetricsHook`
        (``metrics.jsonl``, TensorBoard, progress), `CheckpointHook`, `EvalHook`.

        Raises:
            FileExistsError: a new run (nothing resumed) into a folder that holds another run.

        Returns:
            ``metrics.json``'s content: ``mIoU`` (mean over the evaluated datasets), per-dataset mIoU,
            the final losses, the iteration count and timing.
        """
        metrics = MetricsHook()
        hooks: list[Hook] = [metrics, CheckpointHook(), EvalHook(metrics)]
        for hook in hooks:
            hook.before_train(self)
        start, start_iter = time.perf_counter(), self.iteration
        last: dict[str, float] = {}
        try:
            for batch in self._loader():
                last = self.train_step(batch)
                self.iteration += 1
                for hook in hooks:
                    hook.after_step(self, last)
        finally:
            for hook in hooks:
                hook.after_train(self)
        return self._finish(metrics, last, time.perf_counter() - start, start_iter)

    def _finish(
        self, log: MetricsHook, last: dict[str, float], train_seconds: float, start_iter: int
    ) -> dict[str, Any]:
        """After the loop: final checkpoint and weights, final evaluation, ``metrics.json``, figures."""
        done = self.iteration >= self.cfg.train.max_iter
        final = self.save_checkpoint("model_final.pth") if done else None
        exported = self.export_model() if done else None
        results = self.evaluate()
        if not self.is_main:
            return {}
        per = {n: r["mIoU"] for n, r in results.items()}
        metrics: dict[str, Any] = {
            "mIoU": float(np.mean(list(per.values()))) if per else float("nan"),
            "per_dataset_mIoU": per,
            "iterations": self.iteration,
            "trained_iterations_this_run": self.iteration - start_iter,
            "train_seconds": train_seconds,
            "final_losses": last,
            "checkpoint": str(final) if final else None,
            "model": str(exported) if exported else None,
            "run": self.run_id,
        }
        log.write_eval(self.iteration, results, to_jsonl=False)
        log.close_writer()
        if self.cfg.train.plots:
            from .plots import make_run_plots

            paths = make_run_plots(self.output_dir, self.model, self.cfg, results)
            metrics["plots"] = [str(p) for p in paths]
        (self.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


# --------------------------------------------------------------------------- after-step hooks
class Hook:
    """An action around the training loop (detectron2's ``HookBase``): `Trainer.train` calls
    `before_train` once, `after_step` after every optimisation step with its logged scalars, and
    `after_train` once when the loop ends, also when it ends with an error."""

    def before_train(self, trainer: Trainer) -> None:
        """Before the first step."""

    def after_step(self, trainer: Trainer, logged: dict[str, float]) -> None:
        """After each step (``trainer.iteration`` already counts it)."""

    def after_train(self, trainer: Trainer) -> None:
        """When the loop ends, normally or not."""


def _due(period: int, iteration: int, max_iter: int) -> bool:
    """Whether a periodic action runs at ``iteration``: every ``period`` iterations before the last
    (``period`` 0: never; the last iteration has its own final actions)."""
    return bool(period) and iteration % period == 0 and iteration < max_iter


class MetricsHook(Hook):
    """The run's records (main process): the losses into ``metrics.jsonl``, the run's ``history`` and
    TensorBoard every ``train.log_period`` iterations and at the last; the progress bar every step."""

    def __init__(self) -> None:
        self.log: MetricsLog | None = None
        self.writer: Any = None
        self.progress: Progress | None = None

    def before_train(self, trainer: Trainer) -> None:
        tcfg = trainer.cfg.train
        if trainer.is_main:
            self.log = trainer._open_run()
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after the checkpoint it resumes from
            self.writer = SummaryWriter(
                str(trainer.output_dir / "tensorboard"),
                purge_step=trainer.iteration + 1 if trainer.resumed_from is not None else None,
            )
        self.progress = Progress(
            tcfg.max_iter, initial=trainer.iteration, desc="train", enabled=trainer.is_main and tcfg.progress
        )

    def after_step(self, trainer: Trainer, logged: dict[str, float]) -> None:
        if self.log is None or self.progress is None:
            return
        it, tcfg = trainer.iteration, trainer.cfg.train
        if it % tcfg.log_period == 0 or it == tcfg.max_iter:
            record = {"iteration": it, **logged}
            trainer.history.append(record)
            self.log.write(record)
            for k, v in logged.items():
                self.writer.add_scalar(f"train/{k}", v, it)
        self.progress.update(loss=logged["loss"], lr=logged["lr"])

    def write_eval(self, iteration: int, results: dict[str, dict], *, to_jsonl: bool = True) -> None:
        """Each dataset's mIoU into TensorBoard (and ``metrics.jsonl``)."""
        for name, r in results.items():
            self.writer.add_scalar(f"eval/{name}/mIoU", r["mIoU"], iteration)
            if to_jsonl and self.log is not None:
                self.log.write({"iteration": iteration, "eval": name, "mIoU": r["mIoU"]})

    def close_writer(self) -> None:
        """Flush and close TensorBoard's writer."""
        if self.writer is not None:
            self.writer.close()

    def after_train(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.log is not None:
            self.log.close()


class CheckpointHook(Hook):
    """A checkpoint every ``train.checkpoint_period`` iterations (`Trainer.save_checkpoint`)."""

    def after_step(self, trainer: Trainer, logged: dict[str, float]) -> None:
        if _due(trainer.cfg.train.checkpoint_period, trainer.iteration, trainer.cfg.train.max_iter):
            trainer.save_checkpoint()


class EvalHook(Hook):
    """An evaluation every ``train.eval_period`` iterations, its mIoU recorded by the `MetricsHook`."""

    def __init__(self, metrics: MetricsHook) -> None:
        self.metrics = metrics

    def after_step(self, trainer: Trainer, logged: dict[str, float]) -> None:
        if _due(trainer.cfg.train.eval_period, trainer.iteration, trainer.cfg.train.max_iter):
            results = trainer.evaluate()
            if trainer.is_main:
                self.metrics.write_eval(trainer.iteration, results)


def _dump_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False)
