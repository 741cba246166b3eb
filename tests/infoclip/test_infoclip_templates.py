"""InfoCLIPLoss with per-template text (N_C, T, d), the layout of mmsegmentation's CAT-Seg port (issue 12, E)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from infoclip import InfoCLIPLoss


def _pair(**kw) -> tuple[InfoCLIPLoss, InfoCLIPLoss]:
    torch.manual_seed(0)
    templated = InfoCLIPLoss(8, text_templates=True, **kw)
    plain = InfoCLIPLoss(8, **kw)
    plain.load_state_dict(templated.state_dict())
    return templated, plain


@pytest.mark.parametrize("batch_text", [False, True])
def test_templates_are_averaged_then_renormalised(batch_text):
    templated, plain = _pair()
    g = torch.Generator().manual_seed(1)
    tv, sv = torch.randn(3, 8, 4, 4, generator=g), torch.randn(3, 8, 4, 4, generator=g)
    shape = (3, 5, 4, 8) if batch_text else (5, 4, 8)
    tt = F.normalize(torch.randn(*shape, generator=g), dim=-1)  # per-template unit vectors, as the port's
    st = F.normalize(torch.randn(*shape, generator=g), dim=-1)
    got = templated(tv, tt, sv, st)
    # the rule written out: mean over the template axis, then unit length
    mean_t = tt.sum(dim=-2) / 4
    mean_s = st.sum(dim=-2) / 4
    ref = plain(
        tv, mean_t / mean_t.norm(dim=-1, keepdim=True), sv, mean_s / mean_s.norm(dim=-1, keepdim=True)
    )
    # the same float32 operations up to the order of the template sum: a few ulps of O(1) values
    torch.testing.assert_close(got.total, ref.total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.student_alignment, ref.student_alignment, rtol=1e-5, atol=1e-6)


def test_one_template_of_unit_vectors_is_the_plain_loss():
    templated, plain = _pair()
    g = torch.Generator().manual_seed(2)
    tv, sv = torch.randn(2, 16, 8, generator=g), torch.randn(2, 16, 8, generator=g)
    text = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    got = templated(tv, text[:, None], sv, text[:, None])
    ref = plain(tv, text, sv, text)
    torch.testing.assert_close(
        got.total, ref.total, rtol=1e-6, atol=1e-6
    )  # normalising a unit vector: ~1 ulp


def test_template_layout_errors_say_what_to_do():
    templated, _ = _pair()
    v = torch.randn(2, 16, 8)
    with pytest.raises(ValueError, match="text_templates=False"):
        templated(v, torch.randn(6, 8), v, torch.randn(6, 8))
    assert "text_templates=True" in repr(templated)
