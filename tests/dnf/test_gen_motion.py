"""Motion diffusion: cross-attention to the shape's tokens, time-reversal windows, window
extension (known frames kept, noised at the current step, new frames continuing), end to end."""

from __future__ import annotations

import math

import pytest
import torch

from backend.jobs.api import JobCancelled
from backend.methods.dnf.gen.config import (
    DenoiserConfig,
    MotionDenoiserConfig,
    MotionDiffusionConfig,
    OptimConfig,
    ShapeDiffusionConfig,
)
from backend.methods.dnf.gen.generator import load_generator, save_generator
from backend.methods.dnf.gen.motion_denoiser import MotionDenoiser
from backend.methods.dnf.gen.noise import NoiseConfig
from backend.methods.dnf.gen.sampling import ddim_sample, sample_frames, window_plan
from backend.methods.dnf.gen.tokens import Tokenizer
from backend.methods.dnf.gen.training import train_motion_diffusion, train_shape_diffusion
from backend.methods.dnf.gen.windows import reverse_time, sample_windows
from backend.methods.dnf.layout import FlatLayout

SHAPE_LAYOUT = FlatLayout(3, [4, 4, 1], [1, 1, 0])  # tokens: 3, 5, 5, 1 (S = 4, Ws = 5)
MOTION_LAYOUT = FlatLayout(2, [3, 2], [0, 1])  # tokens: 2, 3, 3 (n = 3, W = 3)


def random_denoiser(seed: int = 0, window: int = 6) -> MotionDenoiser:
    """A motion denoiser with every weight random (the zero-initialised gates and output too),
    so that every path of the architecture carries signal before any training."""
    torch.manual_seed(seed)
    smask = Tokenizer.fit(SHAPE_LAYOUT, torch.randn(4, SHAPE_LAYOUT.size)).mask
    mmask = Tokenizer.fit(MOTION_LAYOUT, torch.randn(4, MOTION_LAYOUT.size)).mask
    model = MotionDenoiser(MotionDenoiserConfig(width=16, depth=2, heads=2, window=window),
                           mmask, smask)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model.eval()


def inputs(seed: int = 1, b: int = 2, f: int = 5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, f, 3, 3, generator=g), torch.tensor([500, 20]),
            torch.randn(b, 4, 5, generator=g))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small ops on a shared 2-core machine: a second thread that gets descheduled makes each
    wait (measured 36 ms instead of under 1 ms per call)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# -- cross-attention ------------------------------------------------------------------------


def test_output_depends_on_the_shape_tokens():
    model = random_denoiser()
    x, t, s = inputs()
    with torch.no_grad():
        base = model(x, t, s)
        other = model(x, t, s + torch.randn(s.shape, generator=torch.Generator().manual_seed(9)))
        swapped = model(x, t, s[:, [0, 2, 1, 3]])  # tokens 1 and 2 have the same width
    # measured 0.052 and 0.051 of the largest output (changing x itself: 0.33)
    assert (other - base).abs().max() > 0.025 * base.abs().max()
    assert (swapped - base).abs().max() > 0.025 * base.abs().max()
    # one creature's shape changes only that creature's motion
    assert torch.equal(base[1], model(x[1:], t[1:], s[1:])[0]) or \
        torch.allclose(base[1], model(x[1:], t[1:], s[1:])[0], atol=1e-5)


def test_cross_attention_weights_differ_between_shape_tokens_and_between_queries():
    """One shape vector broadcast as every key (the public code) gives uniform weights 1/S for
    every query, and so the same output for every motion token: both are checked here."""
    model = random_denoiser()
    _, _, s = inputs()
    ctx = model.shape(s)  # [B, S, d]
    g = torch.Generator().manual_seed(3)
    queries = torch.randn(2, 12, 16, generator=g)
    cross = model.blocks[0].cross
    with torch.no_grad():
        w = cross.weights(queries, ctx)  # [B, heads, L, S]
        out = cross(queries, ctx)  # [B, L, d]
    assert w.shape == (2, 2, 12, 4)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 12), atol=1e-5)
    assert (w - 1 / 4).abs().max() > 0.2  # far from uniform over the 4 shape tokens
    assert (w - w[:, :, :1]).abs().max() > 0.2  # queries attend differently
    spread = (out - out.mean(1, keepdim=True)).abs().max()
    assert spread > 0.1 * out.abs().max()  # outputs differ from one motion token to the next


# -- training windows -----------------------------------------------------------------------


def motion_sequences(n: int = 3, t: int = 9) -> torch.Tensor:
    """[n, t, 3, 3] where entry [i, f] holds 100 i + f everywhere (the frame is readable)."""
    return (100 * torch.arange(n)[:, None] + torch.arange(t)[None]).float()[..., None, None] \
        .expand(n, t, 3, 3).clone()


def test_time_reversal_plays_flagged_windows_backwards():
    frames = torch.arange(2 * 4).float().reshape(2, 4, 1)
    out = reverse_time(frames, torch.tensor([True, False]))
    assert out[0, :, 0].tolist() == [3.0, 2.0, 1.0, 0.0] and torch.equal(out[1], frames[1])
    assert frames[0, 0, 0] == 0  # the input is left alone


@pytest.mark.parametrize("reverse_prob", [0.0, 1.0, 0.5])
def test_windows_are_consecutive_frames_reversed_at_the_given_rate(reverse_prob):
    motion = motion_sequences()
    shapes = torch.arange(3).float()[:, None, None].expand(3, 4, 5)
    wb = sample_windows(motion, shapes, 400, 5, reverse_prob, 0.25,
                        torch.Generator().manual_seed(0))
    values = wb.frames[:, :, 0, 0]  # [B, F] = 100 i + frame
    forward = wb.index[:, None] * 100 + wb.start[:, None] + torch.arange(5)[None]
    expect = torch.where(wb.reversed[:, None], forward.flip(1), forward).float()
    assert torch.equal(values, expect)
    assert torch.equal(wb.shapes[:, 0, 0], wb.index.float())  # each window with its own shape
    share = float(wb.reversed.float().mean())
    assert abs(share - reverse_prob) < 0.07, share
    assert torch.equal(wb.at_start, (wb.start == 0) & ~wb.reversed)
    # start_prob 0.25 on top of the uniform 1/5 chance: 0.4 of the windows start at frame 0
    assert abs(float((wb.start == 0).float().mean()) - 0.4) < 0.07


def test_windows_need_enough_frames():
    with pytest.raises(ValueError, match="fewer than the window"):
        sample_windows(motion_sequences(t=4), torch.zeros(3, 4, 5), 2, 5, 0.5, 0.0,
                       torch.Generator())


# -- window extension -----------------------------------------------------------------------

NOISE = NoiseConfig(train_steps=200)


class Spy:
    """A denoiser that records its inputs and predicts x0 = 0.3 x_t (anything will do)."""

    def __init__(self):
        self.calls: list[tuple[torch.Tensor, int, bool]] = []

    def __call__(self, x, t, first=False):
        self.calls.append((x.clone(), int(t[0]), first))
        return 0.3 * x


def implied_noise(x: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
    """eps such that x = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    ab = NOISE.training_scheduler().alphas_cumprod[t].double()
    return (x.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()


def test_known_entries_are_kept_and_seen_at_the_current_noise_level():
    g = torch.Generator().manual_seed(0)
    shape = (64, 6, 3, 3)
    known = torch.randn(shape, generator=g)
    mask = (torch.arange(6) < 3)[None, :, None, None]
    spy = Spy()
    out = ddim_sample(spy, shape, NOISE, 10, g, known, mask)
    assert torch.equal(out[:, :3], known[:, :3])  # exactly
    assert not torch.allclose(out[:, 3:], known[:, 3:], atol=0.1)
    assert len(spy.calls) == 10
    for x, t, _ in spy.calls:
        eps = implied_noise(x[:, :3], known[:, :3], t)  # 1,728 entries per step
        # unit noise at the denoiser's own timestep t: the level of the neighbouring step
        # (one DDIM step noisier or cleaner) gives 1.10-1.9 or 0.10-0.88 over the last 5
        # steps; a t+1 index leaves the schedule at the first step
        assert abs(float(eps.std()) - 1) < 0.08 and abs(float(eps.mean())) < 0.08, (t, eps.std())


def test_extension_plan_and_known_frames_come_from_the_previous_window():
    assert window_plan(16, 8, 4) == [(0, 8), (4, 8), (8, 8)]
    assert window_plan(13, 8, 3) == [(0, 8), (5, 8)]
    assert window_plan(5, 8, 3) == [(0, 5)]
    with pytest.raises(ValueError, match="context"):
        window_plan(10, 8, 8)
    spy = Spy()
    g = torch.Generator().manual_seed(1)
    out = sample_frames(spy, 48, 13, 8, 3, (3, 3), NOISE, 6, g)
    assert out.shape == (48, 13, 3, 3)
    assert [first for _, _, first in spy.calls] == [True] * 6 + [False] * 6
    for x, t, _ in spy.calls[6:]:  # window 2 covers frames 5..12; 5, 6, 7 are known
        eps = implied_noise(x[:, :3], out[:, 5:8], t)
        assert abs(float(eps.std()) - 1) < 0.1, t


def gp_kernel(frames: int, length: float = 3.0) -> torch.Tensor:
    f = torch.arange(frames, dtype=torch.float64)
    return torch.exp(-((f[:, None] - f[None]) ** 2) / (2 * length ** 2))


class GaussianOracle:
    """The exact x0 predictor E[x0 | x_t] for x0 ~ a Gaussian process over frames (kernel
    :func:`gp_kernel`), independent over token entries: the best possible trained denoiser."""

    def __init__(self):
        self.abar = NOISE.training_scheduler().alphas_cumprod.double()
        self.gains: dict[tuple[int, int], torch.Tensor] = {}

    def gain(self, t: int, frames: int) -> torch.Tensor:
        if (t, frames) not in self.gains:
            ab, eye = self.abar[t], torch.eye(frames, dtype=torch.float64)
            k = gp_kernel(frames) + 1e-9 * eye
            self.gains[t, frames] = (ab.sqrt() * k @ torch.linalg.inv(ab * k + (1 - ab) * eye)
                                     ).float()
        return self.gains[t, frames]

    def __call__(self, x, t, first=False):
        flat = x.reshape(x.shape[0], x.shape[1], -1)  # [B, F, n W]
        return torch.einsum("fg,bgk->bfk", self.gain(int(t[0]), x.shape[1]), flat) \
            .reshape(x.shape)


def test_extended_frames_continue_the_known_ones():
    expected = 2 * (1 - math.exp(-1 / 18))  # 0.108: mean squared step of the process itself
    g = torch.Generator().manual_seed(2)
    seams = {}
    for rounds in (0, 2):
        out = sample_frames(GaussianOracle(), 256, 16, 8, 4, (2, 2), NOISE, 20, g, eta=1.0,
                            resample=rounds)
        jump = ((out[:, 1:] - out[:, :-1]) ** 2).mean(dim=(0, 2, 3))  # [15] per frame step
        assert float(jump[:7].max()) < expected  # inside the first window: measured 0.087
        seams[rounds] = max(float(jump[7]), float(jump[11]))  # frames 7 -> 8 and 11 -> 12
        var = out.var(dim=(0, 2, 3))
        assert float(var.min()) > 0.45, var  # new frames vary (measured 0.54 and 0.57)
    # measured: seams 0.208 without harmonisation, 0.107 with 2 rounds
    assert seams[0] < 0.3 and seams[2] < 0.15 and seams[2] < 0.75 * seams[0], seams
    # without the known frames the seam would jump by about 2 (two independent unit draws)
    indep = sample_frames(GaussianOracle(), 256, 8, 8, 4, (2, 2), NOISE, 20, g, eta=1.0)
    assert float(((indep[:, 0] - out[:, 7]) ** 2).mean()) > 1.2


# -- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_generators():
    g = torch.Generator().manual_seed(0)
    shapes = torch.randn(6, SHAPE_LAYOUT.size, generator=g) * 0.1
    motion = torch.randn(6, 10, MOTION_LAYOUT.size, generator=g).cumsum(1) * 0.05
    opt = OptimConfig(iters=4, batch=4, log_every=2)
    sgen = train_shape_diffusion(ShapeDiffusionConfig(
        denoiser=DenoiserConfig(width=16, depth=1, heads=2), optim=opt), shapes, SHAPE_LAYOUT)
    cfg = MotionDiffusionConfig(denoiser=MotionDenoiserConfig(width=16, depth=1, heads=2,
                                                              window=6), optim=opt, context=2)
    mgen = train_motion_diffusion(cfg, shapes, motion, sgen.tokenizer, MOTION_LAYOUT)
    return sgen, mgen


def test_motion_sampling_end_to_end_progress_cancel_and_files(tiny_generators, tmp_path):
    sgen, mgen = tiny_generators
    shapes = sgen.sample(3, seed=0, steps=3)
    seen = []
    motion = mgen.sample(shapes, frames=11, seed=0, steps=3,
                         progress=lambda s, f, m: seen.append((s, f)))
    assert motion.shape == (3, 11, MOTION_LAYOUT.size) and torch.isfinite(motion).all()
    # windows (0, 6) (4, 6) (8, 3); the two continuations with 2 harmonisation rounds per step
    assert len(seen) == 3 + 2 * 3 * 3 and seen[-1] == ("motion", 1.0)
    seen.clear()
    mgen.sample(shapes, frames=11, steps=3, resample=0, progress=lambda s, f, m: seen.append(f))
    assert len(seen) == 3 * 3
    assert mgen.info["frames"] == 10 and len(mgen.info["losses"]) == 2
    with pytest.raises(JobCancelled, match="step 4 of 9"):
        calls = iter(range(100))
        mgen.sample(shapes, frames=11, steps=3, resample=0,
                    cancelled=lambda: next(calls) >= 4)
    save_generator(mgen, tmp_path)
    back = load_generator(tmp_path, "motion")
    assert back.config == mgen.config
    assert torch.equal(back.sample(shapes, frames=11, seed=0, steps=3), motion)
