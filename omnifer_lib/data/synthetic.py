"""Embedded synthetic FER data: procedurally rendered faces, no files, deterministic.

Each image is drawn by :mod:`._faces` from parameters that are a pure function of
``(seed, domain, split, index)`` (a counter-based hash, no global RNG state), so

* the same seed gives identical tensors on any call, in any batch, in any worker;
* datasets are **lazy**: nothing is rendered until an index is asked for, and memory
  does not grow with ``size`` beyond the label arrays (8 bytes per sample each), so a
  pool of 10^6 images can be streamed; small datasets cache their rendered images.

Expressions are built from facial action units (AUs) after the EMFACS prototypes —
happy AU6+12, sad AU1+4+15, surprise AU1+2+5+26, fear AU1+2+4+5+7+20+26,
anger AU4+5+7+23, disgust AU9+15+16, neutral none — each scaled by a random intensity,
with small activations of unrelated AUs, so weak expressions overlap each other and
neutral as real ones do. Identity (face shape and proportions, skin tone, hair, eyes,
brows, lips, beard, glasses wearer) is drawn per subject; nuisances (yaw, roll, scale,
shift, illumination, blur, noise, glasses, a hand, background) per image.

Domains play the *roles* of the paper's datasets (DESIGN.md "Dataset roles"); their
names say which dataset they stand in for, never that they are that dataset:

========  =====================================================================
rafdb     in-the-wild colour, pose, occlusion, ~6 % label noise (the anchor)
fer2013   in-the-wild, low resolution, grayscale, ~8 % label noise
ckplus    lab, frontal grayscale, posed intense expressions, few subjects
jaffe     lab, 10 female subjects per split, subtle posed expressions, grayscale
mmi       lab colour, each subject with an own way of posing, glasses/moustaches
ms1m      large unlabeled celebrity-like pool: skewed prior (mostly neutral and
          happy), own identity distribution, identity labels in ``subjects``,
          expression labels hidden (-1) and kept in ``true_labels``
========  =====================================================================

The lab domains and fer2013 have their own *expression style* (per-domain gains on the
AUs of each prototype plus substituted AUs; per-subject variation on top), so a model
trained on the rafdb domain transfers imperfectly, as in §4.2 of the paper.

Difficulty, as measured when the domains were tuned (one CPU thread): a 4-block
VGG-style CNN (conv-BN-ReLU-maxpool, widths 32/64/128/128, global average pooling),
SGD lr 0.02, momentum 0.9, weight decay 5e-4, cosine schedule, batch 64, horizontal flips,
trained on 3,000 rafdb-domain training images at 48 px, scored on the test splits
against the rendered labels:

==============  ========  =======  ======  =====  =====  ============
epochs (seed)   rafdb     fer2013  ckplus  jaffe  mmi    ms1m (pool)
==============  ========  =======  ======  =====  =====  ============
10 (seed 0)     72.3 %    45.3 %   63.0 %  42.7 %  54.0 %  65.0 %
10 (seed 1)     77.4 %    31.6 %   65.0 %  46.0 %  62.5 %  67.4 %
25 (seed 0)     89.8 %    61.0 %   75.4 %  54.9 %  67.3 %  74.8 %
==============  ========  =======  ======  =====  =====  ============

(test sizes 1000 / 1000 / 654 / 213 / 400 / 2000; chance is 14 %.) Rendering runs at
roughly 1,300-2,000 images/s per CPU thread at 48 px.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import _faces
from ._base import DatasetRecord, LABELS, FERDataset

N_CLASSES = len(LABELS)
_AU = _faces.AU_INDEX

# ----------------------------------------------------------------------------- EMFACS prototypes
#: AU weights per canonical class (row order = LABELS); unlisted AUs are 0
PROTOTYPES: Dict[str, Dict[int, float]] = {
    "neutral": {},
    "anger": {4: 1.0, 5: 0.7, 7: 0.9, 23: 1.0},
    "disgust": {9: 1.0, 15: 0.8, 16: 0.8},
    "fear": {1: 1.0, 2: 0.8, 4: 0.7, 5: 1.0, 7: 0.5, 20: 1.0, 26: 0.6},
    "happy": {6: 0.9, 12: 1.0},
    "sad": {1: 1.0, 4: 0.8, 15: 1.0},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.9, 26: 1.0},
}


def prototype_matrix() -> np.ndarray:
    """(7, n_AU) array of prototype AU weights, rows in LABELS order."""
    m = np.zeros((N_CLASSES, len(_faces.AUS)))
    for ci, cname in enumerate(LABELS):
        for a, w in PROTOTYPES[cname].items():
            m[ci, _AU[a]] = w
    return m


# ----------------------------------------------------------------------------- counter-based hashing
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64) + _GOLD
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _str_key(text: str) -> np.uint64:
    return np.uint64(zlib.crc32(text.encode("utf-8")))


def _base_key(*parts) -> np.uint64:
    k = np.uint64(0)
    for part in parts:
        v = _str_key(part) if isinstance(part, str) else np.uint64(int(part) & 0xFFFFFFFFFFFFFFFF)
        k = _mix(np.array([k ^ v], dtype=np.uint64))[0]
    return k


class _Draws:
    """Independent uniform / normal draws for a vector of keys; each call is a new stream."""

    def __init__(self, keys: np.ndarray):
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.stream = 0

    def _bits(self, extra: Optional[int]) -> np.ndarray:
        self.stream += 1
        k = _mix(self.keys ^ _mix(np.array([self.stream], dtype=np.uint64)))
        if extra is not None:
            k = _mix(k[:, None] + np.arange(1, extra + 1, dtype=np.uint64)[None, :] * _GOLD)
        return k

    def u(self, lo: float = 0.0, hi: float = 1.0, extra: Optional[int] = None) -> np.ndarray:
        x = (self._bits(extra) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        return lo + (hi - lo) * x

    def n(self, mean: float = 0.0, std: float = 1.0, extra: Optional[int] = None) -> np.ndarray:
        u1 = np.maximum(self.u(extra=extra), 1e-12)
        u2 = self.u(extra=extra)
        return mean + std * np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)

    def choice(self, probs: Sequence[float]) -> np.ndarray:
        cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
        cdf /= cdf[-1]
        return np.minimum(np.searchsorted(cdf, self.u(), side="right"), len(cdf) - 1)


# ----------------------------------------------------------------------------- domains
def _prior(counts: Sequence[float], power: float = 1.0) -> Tuple[float, ...]:
    c = np.asarray(counts, dtype=np.float64) ** power
    return tuple((c / c.sum()).tolist())


@dataclass(frozen=True)
class Domain:
    """How one synthetic domain is drawn. Class priors are in LABELS order."""

    name: str
    role: str
    color: bool = True
    p_gray: float = 0.0                 # share of grayscale photos in a colour domain
    res: float = 1.0                    # render at res * image_size, then upsample (low-res look)
    sizes: Tuple[int, int] = (3000, 1000)  # default train / test sizes
    images_per_subject: float = 3.0
    max_subjects: Optional[int] = None
    prior: Tuple[float, ...] = tuple([1 / 7] * 7)
    intensity: Tuple[float, float] = (0.2, 1.0)
    leak: float = 0.08                  # std of unrelated AU activations
    style: float = 0.0                  # domain expression style strength (0 = canonical)
    subject_style: float = 0.15
    label_noise: float = 0.0
    hidden_labels: bool = False
    yaw: float = 0.0
    roll: float = 0.0                   # radians (std)
    scale: Tuple[float, float] = (0.78, 0.86)
    shift: float = 0.02
    light: float = 0.2                  # directional light strength
    ambient: Tuple[float, float] = (0.6, 0.75)
    blur: float = 0.1
    noise: float = 0.015
    p_glasses: float = 0.05
    p_sun: float = 0.0
    p_hand: float = 0.0
    background: str = "lab"
    lab_gray: Tuple[float, float] = (0.55, 0.8)
    tone: Tuple[float, float] = (0.0, 1.0)
    p_female: float = 0.5
    hair_weights: Tuple[float, ...] = (0.3, 0.25, 0.2, 0.12, 0.05, 0.08)  # black..grey
    p_beard: float = 0.15
    p_moustache: float = 0.1
    #: explicit ways of posing: (class, AU, multiplier, added weight) applied to the prototypes
    edits: Tuple[Tuple[str, int, float, float], ...] = ()


# RAF-DB basic set class counts (train+test), FER-2013 counts, CK+ protocol counts; LABELS order
_RAF_COUNTS = (3204, 867, 877, 355, 5957, 2460, 1619)
_FER_COUNTS = (6198, 4953, 547, 5121, 8989, 6077, 4002)
_CK_COUNTS = (327, 135, 177, 75, 207, 84, 249)

DOMAINS: Dict[str, Domain] = {
    "rafdb": Domain(
        "rafdb", "in-the-wild colour (RAF-DB's role: anchor)", color=True, sizes=(3000, 1000),
        images_per_subject=3, prior=_prior(_RAF_COUNTS, 0.35), intensity=(0.55, 1.0), leak=0.10,
        style=0.0, subject_style=0.15, label_noise=0.05, yaw=0.30, roll=0.12, scale=(0.84, 1.0),
        shift=0.05, light=0.5, ambient=(0.45, 0.75), blur=0.3, noise=0.02, p_gray=0.08, p_glasses=0.15,
        p_sun=0.3, p_hand=0.08, background="wild"),
    "fer2013": Domain(
        "fer2013", "in-the-wild low-resolution grayscale (FER-2013's role)", color=False, res=0.7,
        sizes=(3000, 1000), images_per_subject=3, prior=_prior(_FER_COUNTS, 0.5), intensity=(0.5, 1.0),
        leak=0.10, style=0.15, subject_style=0.15, label_noise=0.08, yaw=0.4, roll=0.18,
        edits=(("anger", 26, 1.0, 0.4), ("fear", 4, 1.3, 0.0)),
        scale=(0.84, 1.0), shift=0.06, light=0.5, ambient=(0.5, 0.8), blur=0.25, noise=0.025,
        p_glasses=0.12, p_sun=0.3, p_hand=0.10, background="wild"),
    "ckplus": Domain(
        "ckplus", "lab, frontal grayscale, posed intense expressions (CK+'s role)", color=False,
        sizes=(654, 654), images_per_subject=10, prior=_prior(_CK_COUNTS), intensity=(0.75, 1.0),
        leak=0.04, style=0.30, subject_style=0.20, yaw=0.04, roll=0.03, scale=(0.80, 0.86), shift=0.02,
        light=0.15, ambient=(0.65, 0.75), blur=0.15, noise=0.02, p_glasses=0.03, lab_gray=(0.35, 0.55),
        edits=(("anger", 5, 0.2, 0.0), ("anger", 9, 1.0, 0.35), ("anger", 15, 1.0, 0.3),
               ("disgust", 16, 0.3, 0.0), ("disgust", 10, 1.0, 0.8), ("disgust", 4, 1.0, 0.5),
               ("fear", 26, 0.3, 0.0), ("fear", 2, 0.5, 0.0), ("fear", 20, 1.3, 0.0),
               ("sad", 1, 0.6, 0.0), ("sad", 15, 1.3, 0.0), ("surprise", 26, 0.55, 0.0),
               ("surprise", 5, 1.3, 0.0), ("surprise", 20, 1.0, 0.3))),
    "jaffe": Domain(
        "jaffe", "lab, 10 Japanese-female-like subjects, subtle posed expressions (JAFFE's role)",
        color=False, sizes=(213, 213), images_per_subject=21, max_subjects=10,
        prior=_prior((30, 30, 29, 32, 31, 31, 30)), intensity=(0.45, 0.85), leak=0.05, style=0.30,
        edits=(("anger", 4, 0.4, 0.0), ("anger", 23, 0.5, 0.0), ("anger", 5, 0.3, 0.0), ("anger", 15, 1.0, 0.4),
               ("anger", 10, 1.0, 0.4), ("fear", 5, 0.5, 0.0), ("fear", 26, 0.3, 0.0), ("fear", 15, 1.0, 0.4),
               ("disgust", 9, 0.6, 0.0), ("disgust", 4, 1.0, 0.6), ("sad", 1, 0.5, 0.0),
               ("happy", 12, 0.8, 0.0)),
        subject_style=0.20, yaw=0.02, roll=0.03, scale=(0.78, 0.84), shift=0.015, light=0.25,
        ambient=(0.6, 0.75), blur=0.2, noise=0.02, p_glasses=0.0, lab_gray=(0.65, 0.85),
        tone=(0.12, 0.32), p_female=1.0, hair_weights=(0.85, 0.15, 0, 0, 0, 0), p_beard=0, p_moustache=0),
    "mmi": Domain(
        "mmi", "lab colour, subjects posing in their own way, glasses/moustaches (MMI's role)",
        color=True, sizes=(400, 400), images_per_subject=13, prior=_prior((60, 57, 50, 46, 71, 46, 70)),
        intensity=(0.55, 1.0), leak=0.06, style=0.30, subject_style=0.60,
        edits=(("anger", 5, 0.5, 0.0), ("anger", 26, 1.0, 0.3), ("disgust", 10, 1.0, 0.6),
               ("fear", 4, 0.5, 0.0), ("fear", 12, 1.0, 0.2), ("happy", 6, 0.3, 0.0),
               ("sad", 4, 0.4, 0.0), ("surprise", 26, 0.6, 0.0)), yaw=0.08, roll=0.04,
        scale=(0.78, 0.86), shift=0.02, light=0.2, ambient=(0.6, 0.75), blur=0.15, noise=0.02,
        p_glasses=0.30, p_moustache=0.35, lab_gray=(0.7, 0.9)),
    "ms1m": Domain(
        "ms1m", "unlabeled celebrity-like pool, mostly neutral/happy (MS1M's role)", color=True,
        sizes=(20000, 2000), images_per_subject=20, prior=(0.45, 0.04, 0.035, 0.035, 0.33, 0.05, 0.06),
        intensity=(0.15, 0.9), leak=0.08, style=0.15, subject_style=0.15, hidden_labels=True, yaw=0.35,
        roll=0.05, scale=(0.80, 0.94), shift=0.03, light=0.5, ambient=(0.5, 0.75), blur=0.3, noise=0.03,
        p_glasses=0.12, p_sun=0.25, p_hand=0.03, background="wild", tone=(0.0, 0.85), p_female=0.35,
        hair_weights=(0.25, 0.3, 0.2, 0.15, 0.03, 0.07), p_beard=0.35, p_moustache=0.2),
}

_HAIR = np.array([[0.07, 0.06, 0.05], [0.22, 0.14, 0.09], [0.42, 0.28, 0.16], [0.80, 0.66, 0.42],
                  [0.55, 0.22, 0.10], [0.62, 0.62, 0.62]])
_SKIN_LIGHT = np.array([0.98, 0.82, 0.70])
_SKIN_DARK = np.array([0.33, 0.21, 0.14])
_IRIS = np.array([[0.25, 0.14, 0.07], [0.10, 0.07, 0.05], [0.25, 0.40, 0.60], [0.30, 0.40, 0.25]])
_TEST_SUBJECT_OFFSET = 1 << 32


def domain_style(domain: Domain) -> np.ndarray:
    """(7, n_AU) multiplicative + additive AU weights of a domain's way of posing.

    Fixed by the domain's name (not by the seed), so a domain keeps its style across runs:
    prototype AUs get gains ``exp(style * N(0, 1))``, each expression gains one substituted
    AU of weight ``~style``, then the domain's explicit ``edits`` apply (e.g. CK+-role anger
    without the widened eyes but with a wrinkled nose). ``style = 0`` and no edits give
    the canonical prototypes."""
    out = prototype_matrix()
    if domain.style > 0:
        d = _Draws(np.array([_base_key("style", domain.name)] * N_CLASSES, dtype=np.uint64))
        out = out * np.exp(domain.style * d.n(extra=out.shape[1]))
        sub = np.floor(d.u() * out.shape[1]).astype(int)
        w = domain.style * d.u(0.5, 1.2)
        for ci in range(1, N_CLASSES):
            if out[ci, sub[ci]] == 0:
                out[ci, sub[ci]] = w[ci]
    for cname, a, mul, add in domain.edits:
        ci, ai = LABELS.index(cname), _AU[a]
        out[ci, ai] = out[ci, ai] * mul + add
    return out


# ----------------------------------------------------------------------------- parameters
def _identity_params(domain: Domain, subject_keys: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-subject appearance (all arrays (N,) or (N, 3)) drawn from the domain's
    identity distribution."""
    d = _Draws(subject_keys)
    female = d.u() < domain.p_female
    tone = d.u(*domain.tone)
    skin = _SKIN_LIGHT[None] * (1 - tone[:, None]) + _SKIN_DARK[None] * tone[:, None]
    skin = skin * (1 + d.n(0, 0.03, extra=3))
    hair = _HAIR[d.choice(domain.hair_weights)] * d.u(0.8, 1.2)[:, None]
    hair_len = np.where(female, d.u(0.35, 1.0), d.u(0.0, 0.3))
    male_bald = (~female) & (d.u() < 0.08)
    beard_draw, mous_draw = d.u(), d.u()
    lip_tint = np.array([0.12, -0.06, -0.04])[None] * np.where(female, 1.4, 0.8)[:, None]
    return {
        "face_w": d.u(0.62, 0.74) - 0.025 * female,
        "face_h": d.u(0.90, 1.0),
        "jaw": d.u(0.12, 0.35) + 0.06 * female,
        "skin": np.clip(skin, 0, 1),
        "hair": np.clip(hair, 0, 1),
        "hair_len": hair_len,
        "hair_vol": d.u(0, 1),
        "fringe": d.u(0, 1) * np.where(female, 1.0, 0.6),
        "parting": d.n(0, 0.6),
        "hair_amt": np.where(male_bald, 0.0, 1.0),
        "eye_x": d.u(0.27, 0.32),
        "eye_y": d.u(-0.16, -0.09),
        "eye_w": d.u(0.11, 0.13),
        "eye_open": d.u(0.048, 0.062),
        "iris": _IRIS[d.choice((0.5, 0.3, 0.12, 0.08))],
        "brow_in": d.u(0.06, 0.10),
        "brow_h": d.u(-0.02, 0.03),
        "brow_arch": d.u(0.0, 0.04),
        "brow_t": np.where(female, d.u(0.018, 0.026), d.u(0.024, 0.036)),
        "nose_len": d.u(0.29, 0.37),
        "nose_w": d.u(0.05, 0.072),
        "mouth_y": d.u(0.47, 0.55),
        "mouth_w": d.u(0.19, 0.25),
        "lip_t": d.u(0.022, 0.038) + 0.006 * female,
        "lip": np.clip(skin * 0.62 + lip_tint, 0, 1),
        "mouth_rest": d.n(0, 0.012),
        "beard": np.where((~female) & (beard_draw < domain.p_beard), d.u(0.5, 1.0), 0.0),
        "moustache": np.where((~female) & (mous_draw < domain.p_moustache), 1.0, 0.0),
        "glasses_wearer": (d.u() < domain.p_glasses).astype(np.float64),
        "cloth": d.u(0.05, 0.9, extra=3),
        "style_keys": _mix(subject_keys ^ np.uint64(0x5157)),
    }


def _expression_aus(domain: Domain, style: np.ndarray, classes: np.ndarray, ident_keys: np.ndarray,
                    d: _Draws) -> np.ndarray:
    """(N, n_AU) AU activations: prototype x domain style x subject style x intensity + leak."""
    n_au = style.shape[1]
    intensity = d.u(*domain.intensity)
    jitter = np.exp(d.n(0, 0.2, extra=n_au))
    # a subject's own way of posing: per (subject, class, AU) gains fixed for that subject
    sd = _Draws(_mix(ident_keys ^ (classes.astype(np.uint64) * np.uint64(0x1F3D))))
    subj = np.exp(domain.subject_style * sd.n(extra=n_au))
    leak = np.abs(d.n(0, domain.leak, extra=n_au))
    a = style[classes] * subj * jitter * intensity[:, None] + leak
    return np.clip(a, 0, 1.25)


def _sample_params(domain: Domain, keys: np.ndarray, classes: np.ndarray, ident: Dict[str, np.ndarray],
                   style: np.ndarray) -> Dict[str, torch.Tensor]:
    """All renderer inputs for a batch (numpy float64 -> torch float32)."""
    n = len(keys)
    d = _Draws(keys)
    p: Dict[str, np.ndarray] = {k: v for k, v in ident.items() if k not in ("style_keys", "glasses_wearer")}
    p["au"] = _expression_aus(domain, style, classes, ident["style_keys"], d)
    p["teeth"] = d.u(0.2, 1.0)
    p["gaze"] = d.n(0, 0.4)
    p["cx"] = d.n(0, domain.shift)
    p["cy"] = d.n(0.04, domain.shift)
    p["scale"] = d.u(*domain.scale)
    p["roll"] = d.n(0, domain.roll)
    p["yaw"] = np.clip(d.n(0, domain.yaw), -0.9, 0.9)
    az = d.u(0, 2 * np.pi)
    strength = d.u(0, domain.light)
    lx, ly = strength * np.cos(az), strength * np.sin(az) - 0.3 * strength
    norm = np.sqrt(lx ** 2 + ly ** 2 + 1)
    p["light_x"], p["light_y"], p["light_z"] = lx / norm, ly / norm, 1 / norm
    p["ambient"] = d.u(*domain.ambient)
    # background
    k = 3
    if domain.background == "wild":
        # colours pulled towards a gray level: real backgrounds are rarely saturated
        gray = d.u(0.15, 0.85)[:, None]
        sat = d.u(0.15, 0.6)[:, None]
        p["bg0"] = gray + (d.u(0.0, 1.0, extra=3) - gray) * sat
        p["bg1"] = gray + (d.u(0.0, 1.0, extra=3) - gray) * sat
        p["blob_a"] = d.u(0.0, 0.5, extra=k)
    else:
        g = d.u(*domain.lab_gray)
        p["bg0"] = np.repeat(g[:, None], 3, 1)
        p["bg1"] = np.repeat((g * d.u(0.85, 1.0))[:, None], 3, 1)
        p["blob_a"] = np.zeros((n, k))
    p["bg_grad"] = d.u(0, 2 * np.pi)
    p["blob_x"] = d.u(-1.2, 1.2, extra=k)
    p["blob_y"] = d.u(-1.2, 1.2, extra=k)
    p["blob_r"] = d.u(0.2, 0.8, extra=k)
    p["blob_c"] = d.u(0.1, 0.9, extra=k * 3).reshape(n, k, 3)
    # occluders
    p["glasses"] = ident["glasses_wearer"] * (d.u() < 0.85)
    p["sun"] = (d.u() < domain.p_sun).astype(np.float64)
    p["glass_col"] = np.repeat(d.u(0.02, 0.35)[:, None], 3, 1)
    p["hand"] = (d.u() < domain.p_hand).astype(np.float64)
    side = np.where(d.u() < 0.5, -1.0, 1.0)
    p["hand_x"] = side * d.u(0.05, 0.55)
    p["hand_y"] = d.u(0.35, 0.95)
    p["hand_ang"] = d.n(0, 0.5) - side * 0.3
    p["hand_skin"] = np.clip(ident["skin"] * d.u(0.9, 1.08)[:, None], 0, 1)
    # post-processing (applied in _postprocess)
    p["gain"] = d.u(0.8, 1.15) if domain.background == "wild" else d.u(0.92, 1.05)
    p["gamma"] = np.exp(d.n(0, 0.15 if domain.background == "wild" else 0.05))
    p["cast"] = d.n(0, 0.05 if domain.background == "wild" else 0.01, extra=3)
    p["side_light"] = d.n(0, domain.light * 0.3)
    p["blur"] = d.u(0, domain.blur)
    p["noise"] = d.u(0, domain.noise)
    p["gray"] = np.ones(n) if not domain.color else (d.u() < domain.p_gray).astype(np.float64)
    p["noise_id"] = d.u(0, 1)
    p["noise_dx"] = d.u(0, 1)
    p["noise_dy"] = d.u(0, 1)
    return {key: torch.as_tensor(np.asarray(val), dtype=torch.float32) for key, val in p.items()}


def _blur5(img: torch.Tensor) -> torch.Tensor:
    """Separable [1 4 6 4 1]/16 blur by shifted sums (elementwise: batch-independent)."""
    w = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
    x = F.pad(img, (2, 2, 0, 0), mode="replicate")
    S = img.shape[-1]
    img = sum(wi * x[..., :, i:i + S] for i, wi in enumerate(w))
    x = F.pad(img, (0, 0, 2, 2), mode="replicate")
    return sum(wi * x[..., i:i + S, :] for i, wi in enumerate(w))


def _noise_bank(seed: int, size: int, count: int = 32) -> torch.Tensor:
    """(count, 3, size, size) standard normal textures, a pure function of (seed, size)."""
    d = _Draws(np.array([_base_key("noise", seed, size, i) for i in range(count)], dtype=np.uint64))
    return torch.as_tensor(d.n(extra=3 * size * size).reshape(count, 3, size, size), dtype=torch.float32)


def _postprocess(img: torch.Tensor, p: Dict[str, torch.Tensor], domain: Domain, size: int,
                 bank: torch.Tensor) -> torch.Tensor:
    n = img.shape[0]

    def c(key):
        return p[key].view(n, 1, 1, 1)

    lin = (torch.arange(img.shape[-1], dtype=torch.float32) + 0.5) / img.shape[-1] * 2 - 1
    img = img * (1 + c("side_light") * lin.view(1, 1, 1, -1))
    img = (img * c("gain") * (1 + p["cast"].view(n, 3, 1, 1))).clamp(0, 1) ** c("gamma")
    g = (0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
    gray = c("gray") > 0.5
    img = torch.where(gray, g.expand(-1, 3, -1, -1), img)
    b = c("blur")
    once = _blur5(img)
    img = torch.where(b < 0.5, img + (once - img) * (2 * b), once + (_blur5(once) - once) * (2 * b - 1))
    if img.shape[-1] != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    # noise: a texture from the bank, cyclically shifted per sample (gather, no RNG state)
    idx = (p["noise_id"] * bank.shape[0]).long().clamp(max=bank.shape[0] - 1)
    ar = torch.arange(size)
    oy = (p["noise_dy"] * size).long().view(n, 1, 1)
    ox = (p["noise_dx"] * size).long().view(n, 1, 1)
    rows = (ar.view(1, size, 1) + oy) % size
    cols = (ar.view(1, 1, size) + ox) % size
    tex = bank[idx.view(n, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows.unsqueeze(1), cols.unsqueeze(1)]
    tex = torch.where(gray, tex[:, :1].expand(-1, 3, -1, -1), tex)
    img = img + tex * c("noise")
    return img.clamp(0, 1)


# ----------------------------------------------------------------------------- dataset
class SyntheticFER(FERDataset):
    """A lazily rendered synthetic domain (see module docstring).

    Attributes beyond :class:`FERDataset`: ``true_labels`` (the rendered expression; equals
    ``labels`` except for label noise and the hidden ms1m labels), ``domain`` (name),
    ``spec`` (:class:`Domain`), ``image_size``, ``seed``.

    Parameters
    ----------
    split
        ``"train"`` or ``"test"`` (disjoint subjects, independent images).
    domain
        one of :data:`DOMAINS`.
    size
        number of images; ``None`` = the domain's default for the split.
    image_size
        side in pixels of the square images.
    seed
        everything is a function of ``(seed, domain, split, index)``.
    n_subjects
        override the domain's number of identities in this split.
    cache
        keep rendered images (uint8) after first access; ``None`` = only when they take
        at most 64 MB.
    """

    def __init__(self, split: str = "train", domain: str = "rafdb", size: Optional[int] = None,
                 image_size: int = 48, seed: int = 0, transform: Optional[Callable] = None,
                 n_subjects: Optional[int] = None, cache: Optional[bool] = None):
        if domain not in DOMAINS:
            raise ValueError(f"synthetic: unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
        if split not in ("train", "test"):
            raise ValueError(f"synthetic: split must be 'train' or 'test', got {split!r}")
        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"synthetic: image_size must be an int >= 16, got {image_size!r}")
        spec = DOMAINS[domain]
        size = spec.sizes[0 if split == "train" else 1] if size is None else int(size)
        if size < 0:
            raise ValueError(f"synthetic: size must be >= 0, got {size}")
        self.spec = spec
        self.domain = domain
        self.split = split
        self.image_size = image_size
        self.seed = int(seed)
        if n_subjects is None:
            n_subjects = max(1, math.ceil(size / spec.images_per_subject))
            if spec.max_subjects:
                n_subjects = min(n_subjects, spec.max_subjects)
        self.n_subjects = int(n_subjects)
        self._key = _base_key("sample", self.seed, domain, split)
        self._ident_key = _base_key("identity", self.seed, domain)
        self._style = domain_style(spec)
        true, observed = self._labels_for(size)
        subjects = np.arange(size, dtype=np.int64) % self.n_subjects
        subjects += _TEST_SUBJECT_OFFSET if split == "test" else 0
        super().__init__(observed, subjects, f"synthetic:{domain}", transform)
        self.true_labels = true
        self.description = f"synthetic '{domain}' domain ({spec.role})"
        self._bank: Optional[torch.Tensor] = None
        small = size * 3 * image_size * image_size <= 64 * 2 ** 20
        self._cache_enabled = small if cache is None else bool(cache)
        self._cache: Optional[torch.Tensor] = None

    # ---------------------------------------------------------------- labels without rendering
    def _sample_keys(self, indices: np.ndarray) -> np.ndarray:
        return _mix(np.uint64(self._key) + np.asarray(indices, dtype=np.uint64))

    def _labels_for(self, size: int, chunk: int = 1 << 18) -> Tuple[np.ndarray, np.ndarray]:
        true = np.empty(size, dtype=np.int64)
        observed = np.empty(size, dtype=np.int64)
        for start in range(0, size, chunk):
            idx = np.arange(start, min(size, start + chunk), dtype=np.uint64)
            d = _Draws(_mix(self._sample_keys(idx) ^ np.uint64(0x1AB)))
            cls = d.choice(self.spec.prior)
            flip = d.u() < self.spec.label_noise
            other = (cls + 1 + np.floor(d.u() * (N_CLASSES - 1)).astype(np.int64)) % N_CLASSES
            true[start:start + len(idx)] = cls
            if self.spec.hidden_labels:
                observed[start:start + len(idx)] = -1
            else:
                observed[start:start + len(idx)] = np.where(flip, other, cls)
        return true, observed

    # ---------------------------------------------------------------- rendering
    def _render_uncached(self, indices: np.ndarray) -> torch.Tensor:
        if self._bank is None:
            self._bank = _noise_bank(self.seed, self.image_size)
        keys = self._sample_keys(indices)
        subj_keys = _mix(np.uint64(self._ident_key) + self.subjects[indices].astype(np.uint64))
        ident = _identity_params(self.spec, subj_keys)
        p = _sample_params(self.spec, keys, self.true_labels[indices], ident, self._style)
        res = max(16, int(round(self.image_size * self.spec.res)))
        img = _faces.render(p, res)
        img = _postprocess(img, p, self.spec, self.image_size, self._bank)
        return (img * 255).round_().to(torch.uint8)

    def render(self, indices, batch_size: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images (uint8 tensor N x 3 x S x S) and the labels the dataset yields for them
        (int64 tensor N, -1 for hidden labels). Vectorised; ``batch_size`` bounds memory."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.name}: indices must lie in 0..{len(self) - 1}")
        labels = torch.as_tensor(self.labels[idx])
        if self._cache_enabled:
            if self._cache is None:
                self._cache = self._render_all(batch_size)
            return self._cache[torch.as_tensor(idx)], labels
        out = torch.empty((len(idx), 3, self.image_size, self.image_size), dtype=torch.uint8)
        for s in range(0, len(idx), batch_size):
            out[s:s + batch_size] = self._render_uncached(idx[s:s + batch_size])
        return out, labels

    @property
    def caches_images(self) -> bool:
        """Whether this dataset keeps its rendered images in memory (small datasets)."""
        return self._cache_enabled

    def rendered(self, batch_size: int = 64) -> torch.Tensor:
        """All images as one uint8 tensor ``(N, 3, S, S)`` (rendered now if not cached yet), e.g.
        to store them so that another process can skip the rendering (:meth:`use_rendered`)."""
        if self._cache is None:
            images = self._render_all(batch_size)
            if not self._cache_enabled:
                return images
            self._cache = images
        return self._cache

    def use_rendered(self, images: torch.Tensor) -> None:
        """Adopt images rendered earlier by :meth:`rendered` of an identical dataset (same seed,
        domain, split, size and image size). Only the shape and dtype can be checked here; the
        caller vouches for the rest (e.g. by keying a file on those settings)."""
        expected = (len(self), 3, self.image_size, self.image_size)
        if tuple(images.shape) != expected or images.dtype != torch.uint8:
            raise ValueError(f"{self.name}: expected uint8 images of shape {expected}, got "
                             f"{images.dtype} {tuple(images.shape)}")
        self._cache = images
        self._cache_enabled = True

    def _render_all(self, batch_size: int) -> torch.Tensor:
        out = torch.empty((len(self), 3, self.image_size, self.image_size), dtype=torch.uint8)
        for s in range(0, len(self), batch_size):
            out[s:s + batch_size] = self._render_uncached(np.arange(s, min(len(self), s + batch_size)))
        return out

    def _finish_tensor(self, img_u8: torch.Tensor) -> torch.Tensor:
        img = img_u8.float().div_(255.0)
        return self.transform(img) if self.transform is not None else img

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range 0..{len(self) - 1}")
        imgs, labels = self.render([index])
        return self._finish_tensor(imgs[0]), int(labels[0])

    def __getitems__(self, indices: Sequence[int]) -> List[Tuple[torch.Tensor, int]]:
        """Batched access (used by torch's DataLoader): one vectorised render."""
        imgs, labels = self.render(list(indices))
        return [(self._finish_tensor(imgs[i]), int(labels[i])) for i in range(len(imgs))]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_bank"] = None  # rebuilt on demand in a worker
        return state


#: This dataset's entry in :mod:`omnifer_lib.data.registry`.
RECORD = DatasetRecord("synthetic", "synthetic faces", SyntheticFER, "train", ("train", "test"))
