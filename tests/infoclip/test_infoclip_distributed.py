"""gather=True under torch.distributed: two CPU processes on gloo against one process on the whole batch.

Convention checked (see infoclip.distributed): the loss on every rank equals the single-process loss of
the concatenated batch; the gradient of a rank's local inputs is world_size x the single-process gradient
of that slice; the DDP-style average of the ranks' LPAM gradients equals the single-process gradient.
"""

from __future__ import annotations

import datetime
import os
import socket
import traceback
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from infoclip import InfoCLIPLoss, compression_loss, distillation_loss

WORLD = 2
SCENARIOS = {
    # name: (local batch sizes per rank, gram_over, per-sample text)
    "uneven_batch": ((3, 2), "batch", True),
    "shared_text": ((2, 2), "batch", False),
    "one_per_rank": ((1, 1), "batch", True),  # global batch 2: allowed with gather
    "tokens": ((2, 1), "tokens", True),
}


def _full_data(sizes, per_sample_text, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, hw, d, nc = sum(sizes), 4, 8, 3
    tshape = ((b,) if per_sample_text else ()) + (nc, d)
    tv = torch.randn(b, hw, d, generator=g, dtype=torch.float64)
    tt = torch.randn(*tshape, generator=g, dtype=torch.float64)
    sv = tv + 0.5 * torch.randn(b, hw, d, generator=g, dtype=torch.float64)
    st = tt + 0.5 * torch.randn(*tshape, generator=g, dtype=torch.float64)
    return tv, tt, sv, st


def _make_loss(gram_over):
    torch.manual_seed(123)
    return InfoCLIPLoss(8, gram_over=gram_over, gather=True, lambda_compress=0.8, lambda_distill=1.2).double()


def _run(loss, tv, tt, sv, st):
    sv = sv.clone().requires_grad_(True)
    st = st.clone().requires_grad_(True)
    out = loss(tv, tt, sv, st)
    loss.zero_grad()
    out.total.backward()
    return {
        "total": out.total.detach(),
        "compression": out.compression.detach(),
        "distillation": out.distillation.detach(),
        "sv_grad": sv.grad,
        "st_grad": st.grad,
        "lpam_grads": {n: p.grad.clone() for n, p in loss.lpam.named_parameters()},
    }


def _slice(sizes, rank):
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=WORLD,
            timeout=datetime.timedelta(seconds=60),
        )
        results = {}
        for name, (sizes, gram_over, per_sample_text) in SCENARIOS.items():
            tv, tt, sv, st = _full_data(sizes, per_sample_text)
            sl = _slice(sizes, rank)
            tt_local, st_local = (tt[sl], st[sl]) if per_sample_text else (tt, st)
            results[name] = _run(_make_loss(gram_over), tv[sl], tt_local, sv[sl], st_local)
        # functional losses with gather
        tv, tt, sv, st = _full_data((2, 3), True, seed=1)
        sl = _slice((2, 3), rank)
        r = sv[sl].clone().requires_grad_(True)
        lc = compression_loss(tv[sl], tt[sl], r[..., :3], gather=True)
        ld = distillation_loss(tv[sl, ..., :3], r[..., :3], gather=True, gram_over="tokens")
        (lc + ld).backward()
        results["functional"] = {"lc": lc.detach(), "ld": ld.detach(), "grad": r.grad}
        # a non-finite value on rank 1 only: every rank raises (no rank hangs in a collective)
        bad_tv = tv[sl].clone()
        if rank == 1:
            bad_tv[0, 0, 0] = float("nan")
        try:
            compression_loss(bad_tv, tt[sl], sv[sl, ..., :3], gather=True)
            results["nan_raised"] = False
        except ValueError as err:
            results["nan_raised"] = "non-finite" in str(err)
        dist.barrier()
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.destroy_process_group()
    except Exception:
        Path(out_dir, f"rank{rank}.err").write_text(traceback.format_exc())
        raise


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    out_dir = tmp_path_factory.mktemp("gather")
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(out_dir))) for rank in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()
            pytest.fail("distributed worker timed out")
    errors = [f.read_text() for f in sorted(out_dir.glob("*.err"))]
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_gathered_loss_and_gradients_equal_single_process(rank_results, scenario):
    sizes, gram_over, per_sample_text = SCENARIOS[scenario]
    single = _run(_make_loss(gram_over), *_full_data(sizes, per_sample_text))
    for rank, results in enumerate(rank_results):
        got = results[scenario]
        for key in ("total", "compression", "distillation"):
            torch.testing.assert_close(got[key], single[key], rtol=1e-10, atol=1e-12)
        sl = _slice(sizes, rank)
        torch.testing.assert_close(got["sv_grad"], WORLD * single["sv_grad"][sl], rtol=1e-8, atol=1e-12)
        if per_sample_text:
            torch.testing.assert_close(got["st_grad"], WORLD * single["st_grad"][sl], rtol=1e-8, atol=1e-12)
    if not per_sample_text:
        # shared text reaches the loss through every rank's slice: like a parameter, its rank-averaged
        # gradient (what DDP does for a text encoder) is the single-process gradient
        averaged = sum(r[scenario]["st_grad"] for r in rank_results) / WORLD
        torch.testing.assert_close(averaged, single["st_grad"], rtol=1e-8, atol=1e-12)
    for name, g in single["lpam_grads"].items():
        averaged = sum(r[scenario]["lpam_grads"][name] for r in rank_results) / WORLD  # what DDP does
        torch.testing.assert_close(averaged, g, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_gathered_functional_losses(rank_results):
    tv, tt, sv, _ = _full_data((2, 3), True, seed=1)
    r = sv.clone().requires_grad_(True)
    lc = compression_loss(tv, tt, r[..., :3])
    ld = distillation_loss(tv[..., :3], r[..., :3], gram_over="tokens")
    (lc + ld).backward()
    for rank, results in enumerate(rank_results):
        got = results["functional"]
        torch.testing.assert_close(got["lc"], lc.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["ld"], ld.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["grad"], WORLD * r.grad[_slice((2, 3), rank)], rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_non_finite_on_one_rank_raises_on_every_rank(rank_results):
    assert [r["nan_raised"] for r in rank_results] == [True] * WORLD


def test_gather_outside_a_process_group_is_a_no_op():
    tv, tt, sv, st = _full_data((2, 2), True)
    torch.manual_seed(0)
    a = InfoCLIPLoss(8, gather=True).double()(tv, tt, sv, st).total
    torch.manual_seed(0)
    b = InfoCLIPLoss(8, gather=False).double()(tv, tt, sv, st).total
    assert float(a.detach()) == float(b.detach())
