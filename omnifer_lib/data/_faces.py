"""Vectorised procedural face renderer behind :mod:`omnifer_lib.data.synthetic`.

:func:`render` draws a batch of faces from per-sample parameters (a dict of tensors whose
first dimension is the batch). Everything is an elementwise function of the pixel grid
and of that sample's own parameters — no convolutions or batch reductions — so a face
is the same whatever batch it is rendered in.

Geometry. Pixel centres ``(u, v)`` span ``[-1, 1]`` (``v`` down). The head transform
(shift ``cx, cy``, scale, roll) maps them to *face coordinates* ``(X, Y)``: the face
oval spans about ``X in [-0.75, 0.75]``, ``Y in [-1, 1]`` (forehead top to chin). Yaw is
approximated by shifting the inner features towards the turned side and foreshortening
that side (features in ``Xf`` coordinates); the outline moves less. Shapes are drawn with
a soft step of about one pixel (``_soft``) so small images are antialiased.

Expressions are given as facial action unit (AU) activations in ``[0, ~1.2]``; the
geometric effect of each AU follows FACS descriptions (e.g. AU12 pulls the lip corners
up and out, AU4 lowers and draws the brows together, AU26 drops the jaw).
"""
from __future__ import annotations

from typing import Dict

import torch

Tensor = torch.Tensor

#: action units modelled, in the column order of ``p["au"]``
AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 16, 20, 23, 26)
AU_INDEX = {au: i for i, au in enumerate(AUS)}


def _soft(d: Tensor, px: Tensor) -> Tensor:
    """Coverage of a shape with signed distance ``d`` (negative inside), ~1 pixel edge."""
    # a linear ramp over ~1.2 px: cheaper than a sigmoid and as good for antialiasing
    return (0.5 - d / (1.2 * px)).clamp_(0.0, 1.0)


def _over(img: Tensor, alpha: Tensor, color: Tensor) -> Tensor:
    """Alpha-composite ``color`` (N,3,1,1 or N,3,S,S) over ``img`` (N,3,S,S) with alpha (N,S,S)."""
    return img.lerp_(color.expand_as(img), alpha.unsqueeze(1))


def _darken(img: Tensor, alpha: Tensor, amount: float = 1.0) -> Tensor:
    """Multiply ``img`` by ``1 - amount * alpha`` (wrinkles, creases, shadows)."""
    return img * (1 - amount * alpha).unsqueeze(1)


def render(p: Dict[str, Tensor], size: int) -> Tensor:
    """Render N faces -> float32 tensor (N, 3, size, size) in [0, 1].

    ``p`` holds (N,) tensors (geometry, pose, intensities), (N, 3) colours, (N, K) per-blob
    background parameters and ``au`` (N, len(AUS)); see ``synthetic._sample_params``.
    """
    n = p["cx"].shape[0]

    def c(key: str) -> Tensor:
        return p[key].view(n, 1, 1)

    def col(key: str) -> Tensor:
        return p[key].view(n, 3, 1, 1)

    def au(k: int) -> Tensor:
        return p["au"][:, AU_INDEX[k]].view(n, 1, 1)

    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(lin, lin, indexing="ij")
    u, v = u[None], v[None]

    # ---------------------------------------------------------------- background
    gdir = c("bg_grad")
    t = (0.5 + 0.5 * (u * torch.cos(gdir) + v * torch.sin(gdir))).clamp(0, 1).unsqueeze(1)
    img = col("bg0") * (1 - t) + col("bg1") * t
    for k in range(p["blob_x"].shape[1]):
        d2 = (u - p["blob_x"][:, k].view(n, 1, 1)) ** 2 + (v - p["blob_y"][:, k].view(n, 1, 1)) ** 2
        w = torch.exp(-d2 / p["blob_r"][:, k].view(n, 1, 1) ** 2) * p["blob_a"][:, k].view(n, 1, 1)
        img = _over(img, w, p["blob_c"][:, k].view(n, 3, 1, 1))

    # ---------------------------------------------------------------- head frame
    s, th = c("scale"), c("roll")
    du, dv = u - c("cx"), v - c("cy")
    cos, sin = torch.cos(th), torch.sin(th)
    X = (du * cos + dv * sin) / s
    Y = (-du * sin + dv * cos) / s
    px = 2.0 / size / s
    yaw = c("yaw")
    xo = X - 0.07 * yaw
    xo = xo + 0.15 * yaw * xo * xo            # outline: mild foreshortening
    xf = X - 0.20 * yaw
    xf = xf + 0.30 * yaw * xf * xf            # inner features: stronger
    ax = xf.abs()
    skin = col("skin")
    hair = col("hair")

    fw, fh, jaw = c("face_w"), c("face_h"), c("jaw")
    a26 = au(26)

    # ---------------------------------------------------------------- back hair, neck, clothes, ears
    hy = Y + 0.05
    ry = torch.where(hy < 0, fh + 0.10 + 0.06 * c("hair_vol"), 0.25 + 1.6 * c("hair_len"))
    rx = fw + 0.10 + 0.14 * c("hair_vol")
    d = (torch.sqrt((xo / rx) ** 2 + (hy / ry) ** 2) - 1) * 0.6
    img = _over(img, _soft(d, px) * c("hair_amt"), hair)

    neck = _soft(xo.abs() - 0.42 * fw, px) * _soft(0.55 - Y, px)
    img = _over(img, neck, skin * 0.72)
    d = (torch.sqrt((xo / 1.55) ** 2 + ((Y - 2.0) / 0.78) ** 2) - 1) * 0.6
    img = _over(img, _soft(d, px), col("cloth"))
    ear = ((xo.abs() - fw * 0.97) / 0.075) ** 2 + ((Y - 0.02) / 0.15) ** 2
    img = _over(img, _soft((torch.sqrt(ear) - 1) * 0.07, px), skin * 0.82)

    # ---------------------------------------------------------------- face oval with shading
    yp = Y.clamp(min=0)
    wy = fw * (1 - jaw * yp * yp)
    hy_face = torch.where(Y > 0, fh * (1 + 0.13 * a26), fh)
    r = torch.sqrt((xo / wy) ** 2 + (Y / hy_face) ** 2)
    face = _soft((r - 1) * 0.65, px)
    nx, ny = (xo / wy).clamp(-1, 1), (Y / hy_face).clamp(-1, 1)
    nz = (1 - nx * nx - ny * ny).clamp(min=0).sqrt()
    lx, ly, lz = c("light_x"), c("light_y"), c("light_z")
    lam = (nx * lx + ny * ly + nz * lz).clamp(min=0)
    amb = c("ambient")
    shade = (amb + (1 - amb) * lam).unsqueeze(1)
    img = _over(img, face, skin * shade)

    # cheeks: AU6 raises and rounds them (highlight + blush)
    cheek_y = 0.16 - 0.05 * au(6)
    dc = torch.sqrt(((ax - 0.34) / 0.16) ** 2 + ((Y - cheek_y) / 0.11) ** 2)
    cheek = _soft((dc - 1) * 0.1, px) * face
    blush = torch.tensor([0.06, -0.03, -0.03]).view(1, 3, 1, 1)
    img = _over(img, cheek * (0.10 + 0.30 * au(6)) * 0.6, skin * 1.12 + blush)

    # ---------------------------------------------------------------- eyes
    ex, ey, ew, eo = c("eye_x"), c("eye_y"), c("eye_w"), c("eye_open")
    open_up = (eo * (1 + 1.3 * au(5) - 0.45 * au(7) - 0.30 * au(6) - 0.15 * au(4) - 0.20 * au(9))).clamp(min=0.004)
    open_lo = (eo * 0.75 * (1 - 0.55 * au(6) - 0.50 * au(7) + 0.15 * au(5))).clamp(min=0.004)
    dx = (ax - ex) / ew
    prof = (1 - dx * dx).clamp(min=0)
    y_up = ey - open_up * prof
    y_lo = ey + open_lo * prof
    d_eye = torch.maximum(torch.maximum(y_up - Y, Y - y_lo), (dx.abs() - 1) * ew)
    eye = _soft(d_eye, px) * face
    # socket shadow above the eye
    sock = _soft(torch.sqrt(dx * dx + ((Y - ey + 0.05) / 0.09) ** 2) - 1.0, px / ew) * face
    img = _darken(img, sock, 0.10)
    img = _over(img, eye, torch.full((n, 3, 1, 1), 0.93))
    gaze = c("gaze") * 0.25 * ew
    dir_ = torch.sqrt((ax - ex - gaze * torch.sign(xf)) ** 2 + (Y - ey) ** 2)
    ir = 0.52 * ew
    img = _over(img, _soft(dir_ - ir, px) * eye, col("iris"))
    img = _over(img, _soft(dir_ - 0.45 * ir, px) * eye, torch.full((n, 3, 1, 1), 0.04))
    lid = _soft((Y - y_up).abs() - 0.016, px) * _soft((dx.abs() - 1.08) * ew, px) * face
    img = _darken(img, lid, 0.75)
    lid_lo = _soft((Y - y_lo).abs() - 0.006, px) * _soft((dx.abs() - 1.0) * ew, px) * face
    img = _darken(img, lid_lo, 0.25 + 0.3 * au(6))
    # crow's feet (AU6) at the outer corners
    crow = _soft(torch.sqrt(((ax - ex - ew * 1.25) / 0.06) ** 2 + ((Y - ey) / 0.05) ** 2) - 1, px / 0.06) * face
    img = _darken(img, crow, 0.35 * au(6))

    # ---------------------------------------------------------------- eyebrows (AU1, AU2, AU4, AU9)
    knit = 0.05 * au(4)
    bx_in = c("brow_in") - knit
    bx_out = ex + ew * 1.15
    tb = ((ax - bx_in) / (bx_out - bx_in))
    tbc = tb.clamp(0, 1)
    by = ey - 0.15 - c("brow_h")
    h_in = -0.14 * au(1) + 0.10 * au(4) + 0.04 * au(9)
    h_out = -0.13 * au(2) + 0.04 * au(4) + 0.02 * au(1)
    yb = by + h_in * (1 - tbc) + h_out * tbc - c("brow_arch") * 4 * tbc * (1 - tbc) * (1 - 0.5 * au(1))
    thick = c("brow_t") * (1 - 0.35 * tbc)
    brow = _soft((Y - yb).abs() - thick, px) * _soft(-tb * 0.2, px) * _soft((tb - 1) * 0.2, px) * face
    img = _over(img, brow, hair * 0.5 + 0.03)
    # glabella furrows (AU4), forehead lines (AU1/AU2), nose wrinkles (AU9)
    furrow = _soft((ax - bx_in * 0.55).abs() - 0.011, px) * _soft((Y - by - 0.02).abs() - 0.05, px) * face
    img = _darken(img, furrow, 0.6 * au(4))
    fl = torch.zeros_like(X)
    for k, yk in enumerate((0.10, 0.18, 0.26)):
        yl = by - yk - 0.04 * au(1) - 0.02 * ax * ax * (1 - k)
        fl = torch.maximum(fl, _soft((Y - yl).abs() - 0.007, px) * _soft(ax - 0.33, px))
    img = _darken(img, fl * face, 0.35 * torch.maximum(au(1), au(2)))
    nw_ = torch.zeros_like(X)
    for yk in (0.00, 0.045):
        nw_ = torch.maximum(nw_, _soft((Y - ey - 0.02 - yk).abs() - 0.011, px) * _soft(ax - 0.09, px))
    img = _darken(img, nw_ * face, 0.8 * au(9))

    # ---------------------------------------------------------------- nose
    xn = xf - 0.07 * yaw
    axn = xn.abs()
    tip = ey + c("nose_len")
    bridge = _soft((axn - 0.065).abs() - 0.010, px) * _soft((Y - (ey + tip) / 2).abs() - (tip - ey) / 2, px) * face
    img = _darken(img, bridge, 0.12)
    nos_y = tip + 0.02 - 0.03 * au(9) - 0.015 * au(10)
    nos_w = c("nose_w") * (1 + 0.35 * au(9))
    dn = torch.sqrt(((axn - nos_w) / 0.032) ** 2 + ((Y - nos_y) / 0.017) ** 2)
    img = _darken(img, _soft((dn - 1) * 0.017, px) * face, 0.65)
    wing = torch.sqrt(((axn - nos_w - 0.02) / 0.035) ** 2 + ((Y - nos_y + 0.015) / 0.045) ** 2)
    img = _darken(img, _soft((wing - 1).abs() * 0.03 - 0.005, px) * face, 0.30)
    tip_hi = _soft(torch.sqrt((xn / 0.05) ** 2 + ((Y - tip + 0.03) / 0.04) ** 2) - 1, px / 0.04) * face
    img = _over(img, tip_hi * 0.25, skin * 1.15)

    # ---------------------------------------------------------------- mouth (AU10,12,15,16,20,23,26)
    my = c("mouth_y") + 0.03 * a26
    mw = c("mouth_w") * (1 + 0.30 * au(12) + 0.30 * au(20) - 0.32 * au(23) - 0.08 * a26)
    corner = c("mouth_rest") + 0.12 * au(12) - 0.11 * au(15) - 0.025 * au(20)
    teeth = c("teeth")
    open_u = (0.022 * au(10) + 0.035 * au(12) * teeth + 0.06 * a26 + 0.02 * au(20) + 0.015 * au(9)).clamp(min=0)
    open_l = (0.22 * a26 + 0.075 * au(16) + 0.022 * au(12) * teeth + 0.04 * au(20)).clamp(min=0)
    tm = xf / mw
    atm = tm.abs()
    inside_t = _soft((atm - 1) * mw, px)
    yc = my - corner * tm * tm + 0.02 * au(16) * (1 - tm * tm).clamp(min=0)
    f_open = (1 - tm * tm).clamp(min=0) ** (0.65 - 0.2 * a26)
    y_in_u = yc - open_u * f_open
    y_in_l = yc + open_l * f_open
    f_lip = (1 - tm * tm).clamp(min=0) ** 0.35
    lip_u = c("lip_t") * (1 - 0.8 * au(23)).clamp(min=0.1) * f_lip
    lip_l = c("lip_t") * 1.35 * (1 - 0.75 * au(23)).clamp(min=0.1) * f_lip
    # lips (upper band above the opening, lower band below), then the opening and teeth
    up_lip = _soft(torch.maximum(y_in_u - lip_u - Y, Y - y_in_u), px) * inside_t * face
    lo_lip = _soft(torch.maximum(y_in_l - Y, Y - y_in_l - lip_l), px) * inside_t * face
    lipcol = col("lip")
    img = _over(img, up_lip, lipcol * 0.88)
    img = _over(img, lo_lip, lipcol)
    opening = _soft(torch.maximum(y_in_u - Y, Y - y_in_l), px) * inside_t * face
    img = _over(img, opening, torch.tensor([0.20, 0.05, 0.05]).view(1, 3, 1, 1))
    th_u = (0.045 * (open_u + open_l) / 0.06).clamp(max=0.045)
    upper_teeth = _soft(Y - (y_in_u + th_u), px) * opening * (au(12) * teeth + 0.6 * a26 + au(10)).clamp(max=1)
    img = _over(img, upper_teeth, torch.full((n, 3, 1, 1), 0.92))
    lower_teeth = _soft((y_in_l - 0.035 * au(16)) - Y, px) * opening * (1.5 * au(16)).clamp(max=1)
    img = _over(img, lower_teeth, torch.full((n, 3, 1, 1), 0.85))
    mline = _soft((Y - yc).abs() - 0.009, px) * _soft((atm - 1.02) * mw, px) * face
    img = _darken(img, mline, 0.7)
    # nasolabial folds: nose wing -> beyond the lip corner; deepen with AU12, AU9, AU10
    t_f = (Y - nos_y) / (my - corner - nos_y + 0.06)
    xa = nos_w + 0.06
    xb = mw + 0.05
    xline = xa + (xb - xa) * t_f.clamp(0, 1) + 0.03 * t_f * (1 - t_f)
    fold_d = 0.15 + 0.55 * au(12) + 0.45 * au(9) + 0.35 * au(10)
    fold = _soft((ax - xline).abs() - 0.008, px) * _soft(-t_f * 0.1, px) * _soft((t_f - 1) * 0.1, px) * face
    img = _darken(img, fold, 0.35 * fold_d.clamp(max=1))
    # chin boss raised by AU16/AU15: a faint crease under the lower lip
    chin = _soft((Y - (y_in_l + lip_l + 0.05)).abs() - 0.006, px) * _soft(ax - 0.10, px) * face
    img = _darken(img, chin, 0.25 * (au(15) + au(16)).clamp(max=1))

    # ---------------------------------------------------------------- beard, moustache, top hair
    # beard along the jaw below the cheeks, and on the chin
    jaw_band = torch.maximum(_soft((0.80 - r) * 0.65, px), _soft(y_in_l + lip_l + 0.03 - Y, px))
    beard = jaw_band * _soft(nos_y + 0.08 - Y, px) * face * (1 - up_lip - lo_lip - opening).clamp(0, 1)
    img = _over(img, beard * c("beard") * 0.85, hair * 0.9)
    mous = _soft(torch.maximum(Y - (y_in_u - lip_u + 0.005), (y_in_u - lip_u - 0.06) - Y), px) \
        * _soft(ax - mw * 1.05, px) * face
    img = _over(img, mous * c("moustache") * 0.9, hair * 0.9)
    hl = -0.62 * fh + 0.30 * c("fringe") + 0.32 * xo * xo + 0.10 * c("parting") * xo
    top = _soft(Y - hl, px) * _soft((r - 1.06) * 0.65, px)
    img = _over(img, top * c("hair_amt"), hair * (0.8 + 0.2 * (1 - nz.unsqueeze(1))))

    # ---------------------------------------------------------------- occluders
    # drawn only for the samples that have them (most have none): gather, draw, scatter
    sel = torch.nonzero(p["glasses"] > 0).flatten()
    if len(sel):
        img[sel] = _glasses(img[sel], ax[sel], Y[sel], px[sel], ex[sel], ey[sel], ew[sel], fw[sel],
                            p["sun"][sel].view(-1, 1, 1), p["glass_col"][sel].view(-1, 3, 1, 1))
    sel = torch.nonzero(p["hand"] > 0).flatten()
    if len(sel):
        img[sel] = _hand(img[sel], X[sel], Y[sel], px[sel], p["hand_x"][sel].view(-1, 1, 1),
                         p["hand_y"][sel].view(-1, 1, 1), p["hand_ang"][sel].view(-1, 1, 1),
                         p["hand_skin"][sel].view(-1, 3, 1, 1))
    return img.clamp(0, 1)


def _glasses(img, ax, Y, px, ex, ey, ew, fw, sun, frame_col):
    """Spectacles (rims, bridge, arms); dark lenses where ``sun`` is 1."""
    gr = ew * 1.55
    dg = torch.sqrt((ax - ex) ** 2 + ((Y - ey - 0.01) / 0.85) ** 2)
    img = _over(img, _soft(dg - gr, px) * sun, torch.full_like(frame_col, 0.06))
    rim = _soft((dg - gr).abs() - 0.014, px)
    bar = _soft((Y - ey + 0.02).abs() - 0.010, px)
    bridge = bar * _soft(ax - (ex - gr), px)
    arm = bar * _soft((ex + gr) - ax, px) * _soft(ax - fw * 1.02, px)
    return _over(img, torch.maximum(torch.maximum(rim, bridge), arm), frame_col)


def _hand(img, X, Y, px, hx, hy, angle, skin):
    """A hand (palm and four fingers) raised in front of the lower face."""
    hcx, hcy = X - hx, Y - hy
    a_ = hcx * torch.cos(angle) + hcy * torch.sin(angle)
    b_ = -hcx * torch.sin(angle) + hcy * torch.cos(angle)
    hand = _soft((torch.sqrt((a_ / 0.27) ** 2 + (b_ / 0.22) ** 2) - 1) * 0.22, px)
    for ak, lk in ((-0.19, 0.22), (-0.065, 0.30), (0.065, 0.28), (0.19, 0.22)):
        fk = _soft(torch.maximum((a_ - ak).abs() - 0.055, torch.maximum(b_ + 0.10, -(b_ + 0.10 + lk))), px)
        hand = torch.maximum(hand, fk)
    shade = (0.85 + 0.15 * torch.cos(a_ * 12)).unsqueeze(1)  # knuckle/finger shading
    return _over(img, hand, skin * shade)
