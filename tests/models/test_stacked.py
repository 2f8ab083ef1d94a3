"""K learners stacked as one grouped network compute what each computes alone."""
import pytest
import torch
from torch import nn

from omnifer_lib import models
from omnifer_lib.models.stacked import GroupedLinear, stack, unstack


def _learners(name, k=3):
    return [models.reinitialize(models.build(name, width=4), seed) for seed in range(k)]


@pytest.mark.parametrize("name", ["resnet_small", "vgg_small"])
def test_stacked_learners_train_as_each_alone(name):
    torch.manual_seed(0)
    alone = _learners(name)
    stacked = stack(alone)
    x, y = torch.rand(3, 6, 3, 32, 32), torch.randint(0, 7, (3, 6))
    ref = torch.stack([m(x[k]) for k, m in enumerate(alone)])
    torch.testing.assert_close(stacked(x), ref, atol=1e-5, rtol=1e-4)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4) for m in alone]
    opt = torch.optim.SGD(stacked.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):  # the summed loss gives each group its own learner's gradient
        for k, m in enumerate(alone):
            opts[k].zero_grad()
            nn.functional.cross_entropy(m(x[k]), y[k]).backward()
            opts[k].step()
        opt.zero_grad()
        logits = stacked(x)
        sum(nn.functional.cross_entropy(logits[k], y[k]) for k in range(3)).backward()
        opt.step()
    states = unstack(stacked)
    for k, m in enumerate(alone):
        own = m.state_dict()
        assert states[k].keys() == own.keys()
        for key, value in own.items():  # BatchNorm's running statistics are each learner's own too
            torch.testing.assert_close(states[k][key].to(value.dtype), value, atol=1e-5, rtol=1e-4)
    # a state dict loads into a fresh model of the architecture
    fresh = models.build(name, width=4)
    fresh.load_state_dict(states[1])


def test_the_learners_stay_untouched_and_mismatches_are_refused():
    alone = _learners("resnet_small", 2)
    before = {k: v.clone() for k, v in alone[0].state_dict().items()}
    stacked = stack(alone)
    with torch.no_grad():
        for p in stacked.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in alone[0].state_dict().items())
    with pytest.raises(ValueError, match="one architecture"):
        stack([alone[0], models.build("vgg_small", width=4)])
    with pytest.raises(ValueError, match="same shapes"):
        stack([alone[0], models.build("resnet_small", width=8)])
    with pytest.raises(ValueError, match=r"\(2, B, 3, H, W\)"):
        stacked(torch.rand(3, 4, 3, 32, 32))


def test_grouped_linear_is_k_linear_maps():
    lin = [nn.Linear(5, 3) for _ in range(4)]
    grouped = GroupedLinear(4, 5, 3)
    with torch.no_grad():
        grouped.weight.copy_(torch.stack([m.weight for m in lin]))
        grouped.bias.copy_(torch.stack([m.bias for m in lin]))
    x = torch.rand(2, 4 * 5)
    ref = torch.cat([m(x[:, 5 * k:5 * (k + 1)]) for k, m in enumerate(lin)], dim=1)
    torch.testing.assert_close(grouped(x), ref)
