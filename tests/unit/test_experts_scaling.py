import numpy as np
import pytest
import torch

from mesp.experts.heads import MonotoneQuantiles, check_quantiles, pinball_loss
from mesp.experts.scaling import Forecaster, scale_input, scale_target, unscale_output


def test_scaling_round_trip_and_level():
    x = torch.tensor([[0.0, 3.0, 7.0, 1000.0]])
    z, level = scale_input(x)
    assert level.item() == pytest.approx(np.log1p([0, 3, 7, 1000]).mean(), rel=1e-6)
    assert z.mean().item() == pytest.approx(0.0, abs=1e-6)
    back = unscale_output(scale_target(x, level).unsqueeze(1), level)
    torch.testing.assert_close(back[:, 0], x, rtol=1e-5, atol=1e-4)


def test_scaling_is_scale_free_for_the_core():
    # Multiplying counts by a constant (well above 1) shifts log1p by ~log(c): the core input barely moves.
    x = torch.rand(4, 30) * 50 + 50
    z1, _ = scale_input(x)
    z2, _ = scale_input(x * 1000)
    assert (z1 - z2).abs().max() < 0.02


def test_output_is_non_negative_even_for_very_negative_scores():
    assert (unscale_output(torch.full((2, 1, 3), -50.0), torch.zeros(2, 1)) == 0).all()


def test_monotone_head_keeps_median_and_orders_quantiles():
    head = MonotoneQuantiles((0.1, 0.5, 0.9, 0.99))
    raw = torch.randn(8, 4, 5) * 3
    out = head(raw)
    torch.testing.assert_close(out[:, 1], raw[:, 1])
    assert (out.diff(dim=1) > 0).all()


def test_pinball_loss_hand_computed():
    pred = torch.tensor([[[1.0, 1.0]], [[3.0, 0.0]]])  # (B=2, Q=1, H=2) at q=0.9
    target = torch.tensor([[2.0, 0.0], [3.0, 2.0]])
    # errors y - q: (1, -1, 0, 2) -> 0.9, 0.1, 0, 1.8 -> mean 0.7
    assert pinball_loss(pred, target, (0.9,)).item() == pytest.approx(0.7)


@pytest.mark.parametrize("q", [(0.9,), (0.5, 0.5), (0.9, 0.5), (0.0, 0.5), (0.5, 1.0)])
def test_bad_quantiles_rejected(q):
    with pytest.raises(ValueError, match="quantiles"):
        check_quantiles(q)


def test_forecaster_scaled_and_forward_agree():
    core = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.Unflatten(1, (2, 3)))
    model = Forecaster(core, (0.5, 0.9)).eval()
    x = torch.rand(3, 6) * 20
    s, level = model.scaled(x)
    torch.testing.assert_close(model(x), unscale_output(s, level))


class _Exploding(torch.nn.Module):
    """A core whose log-space output runs away, as an extrapolating expert's can."""

    def forward(self, z):
        return torch.full((z.shape[0], 2, 3), 40.0)


def test_output_is_capped_at_max_growth_times_the_busiest_context_step():
    from mesp.experts.scaling import MAX_GROWTH

    model = Forecaster(_Exploding(), quantiles=(0.5, 0.9))
    x = torch.tensor([[0.0, 5.0, 8000.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    out = model(x)
    # exp(40) would be ~2e17; the cap keeps every quantile at MAX_GROWTH * (1 + max) - 1.
    torch.testing.assert_close(out[0], torch.full((2, 3), MAX_GROWTH * 8001.0 - 1.0), rtol=1e-5, atol=0.0)
    torch.testing.assert_close(out[1], torch.full((2, 3), MAX_GROWTH - 1.0), rtol=1e-5, atol=1e-5)
