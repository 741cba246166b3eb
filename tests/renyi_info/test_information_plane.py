"""renyi_info.InformationPlane and the examples/information_plane script (issue #7)."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from torch import nn

import renyi_info
from example_scripts import EXAMPLES, load_script
from renyi_info import InformationPlane


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(0.5), nn.Linear(7, 3))


def probe(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_record_matches_direct_computation():
    model, (x, y) = make_model(), probe()
    plane = InformationPlane(model, ["1", "3"], x, y, alpha=1.01)
    point = plane.record(epoch=0)
    model.eval()
    with torch.no_grad():
        t1 = model[1](model[0](x))
        t3 = model(x)
    for name, t in (("1", t1), ("3", t3)):
        kw = {"alpha": 1.01, "compute_dtype": torch.float64, "sigma": ("median", "median")}
        ixt = renyi_info.mutual_information(x, t, kernel="gaussian", **kw)
        ity = renyi_info.mutual_information(
            t,
            y,
            kernel=("gaussian", "label"),
            alpha=1.01,
            sigma=("median", None),
            compute_dtype=torch.float64,
        )
        assert point[name][0] == pytest.approx(float(ixt), abs=1e-9)
        assert point[name][1] == pytest.approx(float(ity), abs=1e-9)
        # I(X;T) <= S(X) and I(T;Y) <= S(Y) for unit-diagonal non-negative kernels
        assert point[name][0] <= plane.entropy_x + 1e-9
        assert point[name][1] <= plane.entropy_y + 1e-9


def test_record_restores_modes_removes_hooks_and_keeps_gradients():
    model, (x, y) = make_model(), probe()
    model.train()
    model[2].eval()  # a mixed state must survive too
    modes = [m.training for m in model.modules()]
    params = [p.detach().clone() for p in model.parameters()]
    plane = InformationPlane(model, ["1", "2"], x, y)
    first = plane.record()
    second = plane.record()  # eval mode: dropout off, so the records agree
    assert first == second
    assert [m.training for m in model.modules()] == modes
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert [r["epoch"] for r in plane.history] == [0.0, 1.0]


def test_mode_restored_when_forward_raises():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = nn.Sequential(nn.Linear(5, 3), Boom())
    x, y = probe()
    model.train()
    plane = InformationPlane(model, ["0"], x, y)
    with pytest.raises(RuntimeError, match="boom"):
        plane.record()
    assert model.training and model[0].training
    assert len(model[0]._forward_hooks) == 0


def test_mapping_layers_tuple_outputs_and_extras(tmp_path):
    class TwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 4)

        def forward(self, x):
            h = self.lin(x)
            return h, h.sum()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = TwoOut()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.body(x)[0])

    net = Net()
    x, y = probe()
    plane = InformationPlane(net, {"hidden": net.body, "logits": net.head}, x, y)
    plane.record(epoch=2.5, accuracy=0.5)
    record = plane.history[0]
    assert record["epoch"] == 2.5 and record["accuracy"] == 0.5
    assert set(record["layers"]) == {"hidden", "logits"}
    saved = json.loads(plane.save_json(tmp_path / "sub" / "ip.json").read_text())
    assert saved["layers"] == ["hidden", "logits"] and saved["n"] == 24 and len(saved["records"]) == 1


def test_bad_arguments():
    model, (x, y) = make_model(), probe()
    with pytest.raises(ValueError, match="available names"):
        InformationPlane(model, ["nope"], x, y)
    with pytest.raises(ValueError, match="same number n"):
        InformationPlane(model, ["1"], x, y[:-1])
    with pytest.raises(ValueError, match="at least one"):
        InformationPlane(model, [], x, y)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        InformationPlane(lambda t: t, ["1"], x, y)
    with pytest.raises(ValueError, match="nothing to plot"):
        InformationPlane(model, ["1"], x, y).plot()
    wrapper = nn.Module()
    wrapper.used, wrapper.unused = model, nn.Linear(2, 2)
    wrapper.forward = lambda t: wrapper.used(t)
    with pytest.raises(RuntimeError, match="not called"):
        InformationPlane(wrapper, ["unused"], x, y).record()


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    model, (x, y) = make_model(), probe()
    plane = InformationPlane(model, ["1", "3"], x, y)
    for epoch in range(3):
        plane.record(epoch)
    fig = plane.plot(tmp_path / "ip.png", title="test")
    assert (tmp_path / "ip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xlabel() == "I(X;T) [bits]" and ax.get_ylabel() == "I(T;Y) [bits]"


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    model, (x, y) = make_model(), probe()
    plane = InformationPlane(model, ["1"], x, y)
    plane.record()
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"renyi-info\[plot\]"):
        plane.plot()


def test_example_runs_in_short_mode(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    module = load_script(EXAMPLES / "information_plane" / "run.py", "ip_example")
    results = module.main(["--epochs", "2", "--probe", "40", "--out", str(tmp_path)])
    for name in ("mlp", "cnn"):
        png = tmp_path / f"{name}_information_plane.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "information_plane.json").read_text())
    assert saved["mlp"]["layers"] == ["fc1", "fc2", "fc3"]
    assert saved["cnn"]["layers"] == ["conv1", "conv2", "fc1", "fc2"]
    for name in ("mlp", "cnn"):
        summary = saved[name]
        assert summary == json.loads(json.dumps(results[name]))
        assert [r["epoch"] for r in summary["records"]] == [0.0, 1.0, 2.0]
        assert 0 < summary["S_Y"] <= math.log2(10) + 1e-9
        for record in summary["records"]:
            assert 0.0 <= record["train_acc"] <= 1.0 and 0.0 <= record["test_acc"] <= 1.0
            for point in record["layers"].values():
                assert math.isfinite(point["I_XT"]) and math.isfinite(point["I_TY"])
                assert -1e-9 <= point["I_XT"] <= summary["S_X"] + 1e-9
                assert -1e-9 <= point["I_TY"] <= summary["S_Y"] + 1e-9
        # two epochs of Adam on digits learn something: above chance (10 classes) and above the start
        assert summary["final_train_acc"] > max(0.15, summary["records"][0]["train_acc"])
