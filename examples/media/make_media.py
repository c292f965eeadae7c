"""Render the reference media used by examples/campaign.jsonl.

Everything here is drawn with Pillow (no downloads, no randomness outside a seeded RNG), so the
output is the same on every run.  Re-create the files with::

    python examples/media/make_media.py            # writes next to this script
    python examples/media/make_media.py --no-video # skip the MP4 (needs ffmpeg on PATH)

Outputs (all satisfy Kling's reference rules: jpg/png, each side >= 300 px, aspect ratio between
1:2.5 and 2.5:1, < 10 MB; the video is H.264 MP4, 720x720, 24 fps, 3.5 s):

    perfume_bottle.jpg  sneaker_side.png  ceramic_mug.jpg  wrist_watch.png
    canvas_backpack.jpg studio_backdrop.jpg  product_turntable.mp4
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
SS = 2  # supersampling factor: draw at 2x, downscale with LANCZOS for smooth edges

RGB = tuple[int, int, int]


# --------------------------------------------------------------------------- helpers


def mix(a: RGB, b: RGB, t: float) -> RGB:
    t = max(0.0, min(1.0, t))
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def ramp(stops: Sequence[tuple[float, RGB]], t: float) -> RGB:
    """Colour at position t (0..1) of a multi-stop gradient."""
    for (p0, c0), (p1, c1) in itertools.pairwise(stops):
        if t <= p1:
            return mix(c0, c1, (t - p0) / max(p1 - p0, 1e-9))
    return stops[-1][1]


def columns(w: int, h: int, stops: Sequence[tuple[float, RGB]]) -> Image.Image:
    """Horizontal multi-stop gradient (cylindrical shading across a shape)."""
    strip = Image.new("RGB", (w, 1))
    strip.putdata([ramp(stops, x / max(w - 1, 1)) for x in range(w)])
    return strip.resize((w, h))


def rows(w: int, h: int, stops: Sequence[tuple[float, RGB]]) -> Image.Image:
    """Vertical multi-stop gradient."""
    strip = Image.new("RGB", (1, h))
    strip.putdata([ramp(stops, y / max(h - 1, 1)) for y in range(h)])
    return strip.resize((w, h))


def backdrop(
    w: int, h: int, wall: tuple[RGB, RGB], floor: tuple[RGB, RGB], horizon: float
) -> Image.Image:
    """Seamless studio sweep: wall gradient, soft horizon, floor gradient, light vignette."""
    hy = int(h * horizon)
    img = rows(
        w,
        h,
        [(0.0, wall[0]), (horizon, wall[1]), (min(horizon + 0.02, 1), floor[0]), (1.0, floor[1])],
    )
    img = img.filter(ImageFilter.GaussianBlur(h * 0.01))
    # key light: brighter oval behind the product
    glow = Image.new("L", (w, h), 0)
    ImageDraw.Draw(glow).ellipse((w * 0.15, hy * 0.1, w * 0.85, hy * 1.2), fill=70)
    glow = glow.filter(ImageFilter.GaussianBlur(w * 0.12))
    img = Image.composite(Image.new("RGB", (w, h), (255, 255, 255)), img, glow)
    # vignette
    vig = Image.radial_gradient("L").resize((w, h)).point(lambda v: max(0, v - 150) // 3)
    return Image.composite(Image.new("RGB", (w, h), (40, 35, 45)), img, vig)


def soft_shadow(
    img: Image.Image, box: Sequence[float], blur: float, opacity: int, color: RGB = (30, 25, 30)
) -> None:
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse(tuple(box), fill=opacity)
    mask = mask.filter(ImageFilter.GaussianBlur(blur))
    img.paste(Image.new("RGB", img.size, color), (0, 0), mask)


def reflect(
    img: Image.Image, layer: Image.Image, floor_y: int, strength: float = 0.28, length: float = 0.35
) -> None:
    """Paste a faded, blurred mirror image of ``layer`` (RGBA, same size as img) below floor_y."""
    bbox = layer.getbbox()
    if not bbox:
        return
    part = layer.crop((0, bbox[1], img.width, floor_y)).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    fade_h = max(1, int(part.height * length))
    fade = (
        Image.linear_gradient("L")
        .resize((part.width, fade_h))
        .point(lambda v: int((255 - v) * strength))
    )
    alpha = Image.new("L", part.size, 0)
    alpha.paste(fade, (0, 0))
    alpha = ImageChops.multiply(alpha, part.getchannel("A"))
    part = part.filter(ImageFilter.GaussianBlur(3 * SS))
    img.paste(part.convert("RGB"), (0, floor_y), alpha)


def fill(
    layer: Image.Image, mask: Image.Image, paint: Image.Image, at: tuple[int, int] = (0, 0)
) -> None:
    """Paint ``paint`` (placed at ``at``) onto RGBA ``layer`` through the L ``mask``."""
    full = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    full.paste(paint.convert("RGBA"), at)
    full.putalpha(ImageChops.multiply(full.getchannel("A"), mask))
    layer.alpha_composite(full)


def shape(size: tuple[int, int], draw: Callable[[ImageDraw.ImageDraw], None]) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw(ImageDraw.Draw(mask))
    return mask


def highlight(
    layer: Image.Image, box: Sequence[float], opacity: int, blur: float, radius: float = 0
) -> None:
    """Soft white specular streak."""
    m = shape(layer.size, lambda d: d.rounded_rectangle(tuple(box), radius=radius, fill=opacity))
    m = ImageChops.multiply(m.filter(ImageFilter.GaussianBlur(blur)), layer.getchannel("A"))
    fill(layer, m, Image.new("RGB", layer.size, (255, 255, 255)))


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def grain(img: Image.Image, seed: int, amount: int = 6) -> Image.Image:
    """Deterministic fine grain so the photos do not look flat."""
    rng = random.Random(seed)
    w, h = img.width // 2, img.height // 2
    noise = Image.frombytes("L", (w, h), rng.randbytes(w * h)).resize(img.size)
    noise = noise.point(lambda v: 128 + (v - 128) * amount // 128)
    return ImageChops.add(img, noise.convert("RGB"), scale=1.0, offset=-128)


def finish(img: Image.Image, size: tuple[int, int], path: Path, seed: int) -> None:
    out = grain(img.resize(size, Image.Resampling.LANCZOS), seed)
    if path.suffix == ".png":
        out.save(path, optimize=True)
    else:
        out.save(path, quality=88, optimize=True, progressive=True)
    print(f"wrote {path.name}  {size[0]}x{size[1]}  {path.stat().st_size // 1024} KB")


# --------------------------------------------------------------------------- products


def perfume_bottle(path: Path) -> None:
    W, H = 896 * SS, 1152 * SS
    img = backdrop(
        W, H, ((246, 214, 220), (251, 232, 226)), ((240, 214, 206), (222, 190, 184)), 0.74
    )
    floor = int(H * 0.80)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    bw, bh = int(W * 0.40), int(H * 0.40)
    x0, y0 = (W - bw) // 2, floor - bh
    glass = shape(
        (W, H), lambda d: d.rounded_rectangle((x0, y0, x0 + bw, floor), radius=bw * 0.12, fill=255)
    )
    fill(
        layer,
        glass,
        columns(
            bw,
            bh,
            [
                (0, (214, 150, 168)),
                (0.25, (252, 214, 222)),
                (0.6, (236, 176, 190)),
                (1, (184, 112, 136)),
            ],
        ),
        (x0, y0),
    )
    # liquid line and thick glass base
    liquid_top = y0 + int(bh * 0.18)
    fill(
        layer,
        ImageChops.multiply(
            glass, shape((W, H), lambda d: d.rectangle((0, y0, W, liquid_top), fill=150))
        ),
        Image.new("RGB", (W, H), (255, 238, 242)),
    )
    fill(
        layer,
        ImageChops.multiply(
            glass, shape((W, H), lambda d: d.rectangle((0, floor - bh * 0.08, W, floor), fill=120))
        ),
        Image.new("RGB", (W, H), (255, 240, 244)),
    )
    # label
    lw, lh = int(bw * 0.56), int(bh * 0.22)
    lx, ly = (W - lw) // 2, y0 + int(bh * 0.45)
    d = ImageDraw.Draw(layer)
    d.rounded_rectangle(
        (lx, ly, lx + lw, ly + lh),
        radius=lh * 0.08,
        fill=(250, 244, 236, 235),
        outline=(190, 150, 90, 255),
        width=SS * 2,
    )
    d.text(
        (W // 2, ly + lh * 0.42),
        "FLEUR",
        font=font(int(lh * 0.36)),
        fill=(120, 84, 60, 255),
        anchor="mm",
    )
    d.text(
        (W // 2, ly + lh * 0.78),
        "eau de parfum",
        font=font(int(lh * 0.16)),
        fill=(150, 110, 80, 255),
        anchor="mm",
    )
    # neck and gold cap
    nw, nh = int(bw * 0.22), int(bh * 0.07)
    fill(
        layer,
        shape(
            (W, H), lambda d: d.rectangle(((W - nw) // 2, y0 - nh, (W + nw) // 2, y0 + 2), fill=255)
        ),
        columns(nw, nh + 2, [(0, (150, 120, 80)), (0.35, (245, 225, 170)), (1, (120, 90, 55))]),
        ((W - nw) // 2, y0 - nh),
    )
    cw, ch = int(bw * 0.46), int(bh * 0.30)
    cx0, cy0 = (W - cw) // 2, y0 - nh - ch
    fill(
        layer,
        shape(
            (W, H),
            lambda d: d.rounded_rectangle(
                (cx0, cy0, cx0 + cw, cy0 + ch), radius=cw * 0.1, fill=255
            ),
        ),
        columns(
            cw,
            ch,
            [
                (0, (120, 86, 40)),
                (0.22, (250, 226, 160)),
                (0.34, (214, 176, 100)),
                (0.7, (176, 134, 64)),
                (1, (96, 66, 30)),
            ],
        ),
        (cx0, cy0),
    )
    # speculars
    highlight(
        layer,
        (x0 + bw * 0.12, y0 + bh * 0.06, x0 + bw * 0.2, floor - bh * 0.1),
        170,
        8 * SS,
        bw * 0.04,
    )
    highlight(
        layer,
        (x0 + bw * 0.84, y0 + bh * 0.1, x0 + bw * 0.88, floor - bh * 0.2),
        90,
        6 * SS,
        bw * 0.02,
    )
    highlight(
        layer, (cx0 + cw * 0.18, cy0 + ch * 0.08, cx0 + cw * 0.26, cy0 + ch * 0.92), 140, 4 * SS
    )
    soft_shadow(
        img, (x0 - bw * 0.1, floor - bh * 0.05, x0 + bw * 1.25, floor + bh * 0.07), 18 * SS, 120
    )
    reflect(img, layer, floor)
    img.paste(layer, (0, 0), layer)
    # a few blossom petals on the floor for the spring mood
    petals(img, floor, W, H, seed=11, count=7, color=(250, 196, 210))
    finish(img, (896, 1152), path, seed=1)


def petals(img: Image.Image, floor: int, W: int, H: int, seed: int, count: int, color: RGB) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        pw, ph = rng.randint(22, 40) * SS, rng.randint(12, 20) * SS
        tile = Image.new("RGBA", (pw * 2, pw * 2), (0, 0, 0, 0))
        td = ImageDraw.Draw(tile)
        td.ellipse((pw - pw // 2, pw - ph // 2, pw + pw // 2, pw + ph // 2), fill=(*color, 235))
        td.ellipse(
            (pw - pw // 4, pw - ph // 4, pw + pw // 3, pw + ph // 5),
            fill=(*mix(color, (255, 255, 255), 0.45), 160),
        )
        tile = tile.rotate(rng.uniform(0, 180), resample=Image.Resampling.BICUBIC)
        x = int(rng.choice([rng.uniform(0.05, 0.28), rng.uniform(0.72, 0.92)]) * W)
        y = int(rng.uniform(floor + 0.02 * H, H * 0.95))
        soft = Image.new("L", tile.size, 0)
        soft.paste(tile.getchannel("A").point(lambda v: v // 4), (SS * 3, SS * 4))
        img.paste((60, 40, 50), (x, y), soft.filter(ImageFilter.GaussianBlur(3 * SS)))
        img.paste(tile, (x, y), tile)


def sneaker_side(path: Path) -> None:
    W, H = 1024 * SS, 768 * SS
    img = backdrop(
        W, H, ((206, 236, 224), (232, 246, 238)), ((224, 238, 230), (196, 218, 206)), 0.66
    )
    floor = int(H * 0.74)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))

    def P(pts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        # sneaker drawn in a 0..100 x 0..50 box, toe on the right
        sx, sy, ox, oy = W * 0.0078, H * 0.0095, W * 0.11, floor - 50 * H * 0.0095
        return [(ox + x * sx, oy + y * sy) for x, y in pts]

    upper = P(
        [
            (4, 40),
            (3, 24),
            (6, 14),
            (14, 10),
            (24, 12),
            (34, 16),
            (44, 18),
            (52, 22),
            (62, 26),
            (74, 29),
            (86, 32),
            (95, 36),
            (99, 41),
            (98, 44),
            (4, 44),
        ]
    )
    collar = P([(6, 14), (14, 8), (24, 10), (28, 16), (18, 18), (8, 20)])
    sole = P([(2, 41), (99, 41), (100, 45), (96, 49), (8, 49), (2, 46)])
    gum = P([(3, 46.5), (99, 46.5), (96, 50), (8, 50)])
    m = shape((W, H), lambda d: d.polygon(upper, fill=255)).filter(ImageFilter.GaussianBlur(SS))
    fill(
        layer,
        m,
        rows(
            W,
            H,
            [
                (0, (250, 250, 252)),
                (0.5, (236, 238, 242)),
                (0.75, (206, 210, 220)),
                (1, (190, 194, 204)),
            ],
        ),
    )
    fill(
        layer,
        shape((W, H), lambda d: d.polygon(collar, fill=255)),
        Image.new("RGB", (W, H), (58, 66, 92)),
    )
    # coral accent swoop and heel tab
    swoop = shape(
        (W, H),
        lambda d: d.line(
            P([(20, 38), (40, 33), (60, 30), (78, 26)]), fill=255, width=int(18 * SS), joint="curve"
        ),
    )
    fill(
        layer,
        ImageChops.multiply(swoop, m),
        columns(W, H, [(0, (240, 110, 96)), (1, (252, 160, 120))]),
    )
    fill(
        layer,
        shape(
            (W, H),
            lambda d: d.rounded_rectangle(
                tuple(P([(2.5, 16)])[0] + P([(6.5, 30)])[0]), radius=8 * SS, fill=255
            ),
        ),
        Image.new("RGB", (W, H), (240, 118, 100)),
    )
    # toe cap, eyestay with lace holes, laces
    d = ImageDraw.Draw(layer)
    d.line(P([(80, 30), (84, 35), (88, 41)]), fill=(200, 204, 214, 255), width=3 * SS)
    d.line(P([(30, 15), (44, 19), (58, 24), (70, 28)]), fill=(210, 214, 222, 255), width=12 * SS)
    for _i, (x, y) in enumerate(P([(33, 16), (39, 18), (45, 20), (51, 22), (57, 24), (63, 26)])):
        d.ellipse((x - 5 * SS, y - 5 * SS, x + 5 * SS, y + 5 * SS), fill=(70, 76, 96, 255))
        d.line(
            (x - 10 * SS, y - 12 * SS, x + 14 * SS, y + 4 * SS),
            fill=(252, 252, 252, 255),
            width=6 * SS,
        )
    # stitching
    for x, y in P([(12 + 3 * i, 43 - (i % 2) * 0.01) for i in range(28)]):
        d.line((x, y, x + 6 * SS, y), fill=(180, 184, 196, 255), width=SS * 2)
    fill(
        layer,
        shape((W, H), lambda d: d.polygon(sole, fill=255)),
        rows(W, H, [(0, (255, 255, 255)), (1, (226, 226, 228))]),
    )
    fill(
        layer,
        shape((W, H), lambda d: d.polygon(gum, fill=255)),
        Image.new("RGB", (W, H), (196, 140, 88)),
    )
    highlight(layer, tuple(P([(10, 16)])[0] + P([(60, 20)])[0]), 90, 14 * SS, 20 * SS)
    sx0, _ = P([(0, 0)])[0]
    sx1, _ = P([(104, 0)])[0]
    soft_shadow(img, (sx0, floor - 16 * SS, sx1, floor + 22 * SS), 14 * SS, 140)
    reflect(img, layer, floor + 4 * SS, strength=0.22)
    img.paste(layer, (0, 0), layer)
    finish(img, (1024, 768), path, seed=2)


def ceramic_mug(path: Path) -> None:
    W, H = 1024 * SS, 1024 * SS
    img = backdrop(
        W, H, ((238, 226, 208), (246, 238, 226)), ((232, 218, 198), (206, 188, 164)), 0.64
    )
    floor = int(H * 0.76)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    mw, mh = int(W * 0.40), int(H * 0.40)
    x0, top = (W - mw) // 2, floor - mh
    eh = int(mw * 0.22)  # ellipse height of rim / base
    glaze = [
        (0, (70, 100, 84)),
        (0.22, (150, 184, 160)),
        (0.34, (196, 222, 204)),
        (0.6, (124, 160, 136)),
        (1, (56, 82, 68)),
    ]
    # handle (behind body edge, drawn first)
    hd = ImageDraw.Draw(layer)
    hx0, hy0 = x0 + mw - mw * 0.16, top + mh * 0.18
    hd.ellipse(
        (hx0, hy0, hx0 + mw * 0.46, hy0 + mh * 0.56),
        outline=(92, 128, 106, 255),
        width=int(mw * 0.085),
    )
    hd.arc(
        (hx0 + mw * 0.03, hy0 + mh * 0.03, hx0 + mw * 0.43, hy0 + mh * 0.53),
        -70,
        40,
        fill=(170, 204, 180, 255),
        width=int(mw * 0.02),
    )
    body = shape(
        (W, H),
        lambda d: (
            d.rectangle((x0, top + eh // 2, x0 + mw, floor - eh // 2), fill=255),
            d.ellipse((x0, floor - eh, x0 + mw, floor), fill=255),
        ),
    )
    fill(layer, body, columns(mw, mh, glaze), (x0, top))
    # rim: outer ellipse (glaze), inner ellipse (cream interior with coffee)
    fill(
        layer,
        shape((W, H), lambda d: d.ellipse((x0, top, x0 + mw, top + eh), fill=255)),
        Image.new("RGB", (W, H), (170, 200, 180)),
    )
    r = mw * 0.035
    fill(
        layer,
        shape(
            (W, H),
            lambda d: d.ellipse((x0 + r, top + r * 0.5, x0 + mw - r, top + eh - r * 0.5), fill=255),
        ),
        rows(
            W,
            H,
            [
                (0, (120, 100, 80)),
                (top / H, (232, 222, 204)),
                ((top + eh) / H, (250, 244, 232)),
                (1, (250, 244, 232)),
            ],
        ),
    )
    fill(
        layer,
        shape(
            (W, H),
            lambda d: d.ellipse(
                (x0 + mw * 0.1, top + eh * 0.3, x0 + mw * 0.9, top + eh * 0.92), fill=255
            ),
        ),
        Image.new("RGB", (W, H), (92, 58, 36)),
    )
    # unglazed foot ring
    fill(
        layer,
        ImageChops.multiply(
            body, shape((W, H), lambda d: d.rectangle((0, floor - eh * 0.62, W, floor), fill=255))
        ),
        columns(mw, eh, [(0, (170, 150, 122)), (0.3, (228, 214, 190)), (1, (150, 130, 104))]),
        (x0, floor - eh),
    )
    highlight(layer, (x0 + mw * 0.24, top + eh, x0 + mw * 0.32, floor - eh), 130, 10 * SS, 12 * SS)
    soft_shadow(
        img, (x0 - mw * 0.05, floor - eh * 0.45, x0 + mw * 1.4, floor + eh * 0.3), 20 * SS, 130
    )
    reflect(img, layer, floor - eh // 2, strength=0.18)
    img.paste(layer, (0, 0), layer)
    # steam
    steam = Image.new("L", (W, H), 0)
    sd = ImageDraw.Draw(steam)
    for k, dx in enumerate((-0.08, 0.02, 0.1)):
        pts = [
            (W / 2 + dx * W + math.sin(t / 7 + k) * 22 * SS, top - t * 6 * SS) for t in range(40)
        ]
        sd.line(pts, fill=120, width=10 * SS, joint="curve")
    img.paste((255, 255, 255), (0, 0), steam.filter(ImageFilter.GaussianBlur(12 * SS)))
    finish(img, (1024, 1024), path, seed=3)


def wrist_watch(path: Path) -> None:
    W, H = 1024 * SS, 1024 * SS
    img = rows(W, H, [(0, (196, 210, 228)), (1, (150, 168, 192))])
    vig = Image.radial_gradient("L").resize((W, H)).point(lambda v: max(0, v - 120) // 2)
    img = Image.composite(Image.new("RGB", (W, H), (60, 70, 90)), img, vig)
    cx, cy, R = W // 2, H // 2, int(W * 0.22)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    sw = int(R * 1.05)
    strap = shape(
        (W, H),
        lambda d: d.rounded_rectangle(
            (cx - sw // 2, -40, cx + sw // 2, H + 40), radius=sw // 3, fill=255
        ),
    )
    fill(
        layer,
        strap,
        columns(
            W,
            H,
            [
                (0, (92, 52, 30)),
                ((cx - sw / 2) / W, (92, 52, 30)),
                (cx / W - 0.05, (168, 104, 62)),
                ((cx + sw / 2) / W, (84, 46, 26)),
                (1, (84, 46, 26)),
            ],
        ),
    )
    d = ImageDraw.Draw(layer)
    for y in range(0, H, 22 * SS):  # stitching
        for x in (cx - sw // 2 + 16 * SS, cx + sw // 2 - 16 * SS):
            if abs(y - cy) > R * 1.1:
                d.line((x, y, x, y + 11 * SS), fill=(236, 214, 180, 255), width=2 * SS)
    for y in (cy - R * 1.9, cy + R * 1.55, cy + R * 1.8, cy + R * 2.05):  # holes
        d.ellipse((cx - 7 * SS, y - 7 * SS, cx + 7 * SS, y + 7 * SS), fill=(50, 26, 14, 255))
    # lugs
    for sy in (-1, 1):
        d.rounded_rectangle(
            (
                cx - R * 0.52,
                cy + sy * R * 0.98 - R * 0.1,
                cx + R * 0.52,
                cy + sy * R * 0.98 + R * 0.1,
            ),
            radius=R * 0.06,
            fill=(176, 180, 188, 255),
        )
    # case: steel ring with diagonal sheen
    steel = columns(
        W,
        H,
        [
            (0, (120, 124, 132)),
            (0.38, (236, 238, 242)),
            (0.5, (168, 172, 180)),
            (0.62, (226, 228, 234)),
            (1, (110, 114, 122)),
        ],
    ).rotate(35)
    fill(
        layer, shape((W, H), lambda d: d.ellipse((cx - R, cy - R, cx + R, cy + R), fill=255)), steel
    )
    d.rounded_rectangle(
        (cx + R - 4 * SS, cy - R * 0.1, cx + R + R * 0.12, cy + R * 0.1),
        radius=6 * SS,
        fill=(190, 192, 198, 255),
    )
    # sunburst navy dial
    r2 = int(R * 0.86)
    dial = Image.radial_gradient("L").resize((2 * r2, 2 * r2)).point(lambda v: 255 - v)
    dial_rgb = Image.merge(
        "RGB",
        [
            dial.point(lambda v: 18 + v // 9),
            dial.point(lambda v: 34 + v // 7),
            dial.point(lambda v: 64 + v // 4),
        ],
    )
    fill(
        layer,
        shape((W, H), lambda d: d.ellipse((cx - r2, cy - r2, cx + r2, cy + r2), fill=255)),
        dial_rgb,
        (cx - r2, cy - r2),
    )
    for h in range(12):
        a = math.radians(h * 30)
        r_in, r_out = r2 * (0.74 if h % 3 else 0.68), r2 * 0.9
        d.line(
            (
                cx + r_in * math.sin(a),
                cy - r_in * math.cos(a),
                cx + r_out * math.sin(a),
                cy - r_out * math.cos(a),
            ),
            fill=(240, 232, 214, 255),
            width=(7 if h % 3 else 11) * SS,
        )
    d.text(
        (cx, cy + r2 * 0.42),
        "AURORA",
        font=font(int(r2 * 0.1)),
        fill=(230, 220, 200, 255),
        anchor="mm",
    )
    for ang, ln, wd, col in (
        (305, 0.5, 12, (240, 236, 228)),
        (60, 0.74, 8, (240, 236, 228)),
        (160, 0.8, 3, (242, 120, 96)),
    ):
        a = math.radians(ang)
        d.line(
            (
                cx - r2 * 0.12 * math.sin(a),
                cy + r2 * 0.12 * math.cos(a),
                cx + r2 * ln * math.sin(a),
                cy - r2 * ln * math.cos(a),
            ),
            fill=(*col, 255),
            width=wd * SS,
        )
    d.ellipse((cx - 10 * SS, cy - 10 * SS, cx + 10 * SS, cy + 10 * SS), fill=(200, 200, 206, 255))
    # crystal reflection
    glint = shape(
        (W, H), lambda d: d.pieslice((cx - r2, cy - r2, cx + r2, cy + r2), 190, 250, fill=60)
    ).filter(ImageFilter.GaussianBlur(10 * SS))
    fill(layer, glint, Image.new("RGB", (W, H), (255, 255, 255)))
    # drop shadow (top light, offset down-right)
    sh = (
        layer.getchannel("A")
        .point(lambda v: v * 110 // 255)
        .filter(ImageFilter.GaussianBlur(22 * SS))
    )
    img.paste((30, 36, 50), (18 * SS, 26 * SS), sh)
    img.paste(layer, (0, 0), layer)
    finish(img, (1024, 1024), path, seed=4)


def canvas_backpack(path: Path) -> None:
    W, H = 832 * SS, 1024 * SS
    img = backdrop(
        W, H, ((232, 222, 200), (242, 234, 218)), ((228, 216, 194), (204, 188, 160)), 0.70
    )
    floor = int(H * 0.84)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    bw, bh = int(W * 0.54), int(H * 0.58)
    x0, y0 = (W - bw) // 2, floor - bh
    olive = [(0, (70, 80, 50)), (0.3, (132, 144, 96)), (0.55, (118, 130, 84)), (1, (62, 70, 44))]
    d = ImageDraw.Draw(layer)
    # top carry handle
    d.arc(
        (W / 2 - bw * 0.16, y0 - bh * 0.1, W / 2 + bw * 0.16, y0 + bh * 0.12),
        180,
        360,
        fill=(120, 78, 44, 255),
        width=int(bw * 0.05),
    )
    body = shape(
        (W, H), lambda d: d.rounded_rectangle((x0, y0, x0 + bw, floor), radius=bw * 0.28, fill=255)
    )
    fill(layer, body, columns(bw, bh, olive), (x0, y0))
    # flap with leather trim
    fw, fh = int(bw * 0.92), int(bh * 0.36)
    fx = (W - fw) // 2
    flap = shape(
        (W, H),
        lambda d: d.rounded_rectangle(
            (fx, y0 + bh * 0.02, fx + fw, y0 + fh), radius=fw * 0.26, fill=255
        ),
    )
    fill(
        layer,
        flap,
        columns(fw, fh, [(0, (60, 70, 42)), (0.3, (120, 132, 86)), (1, (54, 62, 38))]),
        (fx, y0),
    )
    # front pocket
    pw, ph = int(bw * 0.7), int(bh * 0.32)
    px, py = (W - pw) // 2, floor - ph - int(bh * 0.07)
    fill(
        layer,
        shape(
            (W, H),
            lambda d: d.rounded_rectangle((px, py, px + pw, py + ph), radius=pw * 0.12, fill=255),
        ),
        columns(pw, ph, [(0, (64, 74, 46)), (0.35, (126, 138, 92)), (1, (58, 66, 40))]),
        (px, py),
    )
    d.line(
        (px + pw * 0.08, py + ph * 0.14, px + pw * 0.92, py + ph * 0.14),
        fill=(40, 40, 34, 255),
        width=5 * SS,
    )
    d.rounded_rectangle(
        (px + pw * 0.82, py + ph * 0.1, px + pw * 0.86, py + ph * 0.3),
        radius=3 * SS,
        fill=(200, 180, 130, 255),
    )
    # leather straps with brass buckles
    for sx in (W / 2 - bw * 0.2, W / 2 + bw * 0.2):
        d.rounded_rectangle(
            (sx - bw * 0.05, y0 + fh * 0.55, sx + bw * 0.05, py + ph * 0.5),
            radius=6 * SS,
            fill=(146, 92, 52, 255),
        )
        by = y0 + fh * 0.96
        d.rounded_rectangle(
            (sx - bw * 0.065, by - bw * 0.05, sx + bw * 0.065, by + bw * 0.05),
            radius=4 * SS,
            outline=(214, 178, 96, 255),
            width=5 * SS,
        )
    # seams
    d.rounded_rectangle(
        (x0 + 10 * SS, y0 + 10 * SS, x0 + bw - 10 * SS, floor - 10 * SS),
        radius=bw * 0.26,
        outline=(90, 100, 64, 200),
        width=2 * SS,
    )
    # canvas weave texture
    rng = random.Random(5)
    tw, th = W // 4, H // 4
    tex = (
        Image.frombytes("L", (tw, th), rng.randbytes(tw * th))
        .resize((W, H))
        .point(lambda v: v * 40 // 255)
    )
    fill(
        layer,
        ImageChops.multiply(tex, layer.getchannel("A")),
        Image.new("RGB", (W, H), (20, 24, 12)),
    )
    highlight(
        layer, (x0 + bw * 0.2, y0 + bh * 0.1, x0 + bw * 0.3, floor - bh * 0.1), 50, 20 * SS, 20 * SS
    )
    soft_shadow(
        img, (x0 - bw * 0.08, floor - bh * 0.04, x0 + bw * 1.18, floor + bh * 0.06), 20 * SS, 140
    )
    reflect(img, layer, floor, strength=0.14, length=0.25)
    img.paste(layer, (0, 0), layer)
    finish(img, (832, 1024), path, seed=5)


def studio_backdrop(path: Path) -> None:
    """Empty spring set: pastel sweep, window-light shadows, round plinth, blossom petals."""
    W, H = 1024 * SS, 768 * SS
    img = backdrop(
        W, H, ((232, 222, 244), (246, 236, 240)), ((244, 228, 232), (226, 204, 212)), 0.62
    )
    # window light: soft diagonal bright bands
    bands = Image.new("L", (W, H), 0)
    bd = ImageDraw.Draw(bands)
    for i in range(3):
        x = W * (0.08 + i * 0.17)
        bd.polygon(
            [(x, 0), (x + W * 0.09, 0), (x + W * 0.32, H * 0.62), (x + W * 0.23, H * 0.62)], fill=60
        )
    img.paste((255, 250, 236), (0, 0), bands.filter(ImageFilter.GaussianBlur(24 * SS)))
    # plinth
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    pw, ph, eh = int(W * 0.36), int(H * 0.16), int(W * 0.06)
    x0, floor = (W - pw) // 2, int(H * 0.82)
    top = floor - ph
    stone = [
        (0, (200, 192, 196)),
        (0.3, (250, 248, 248)),
        (0.7, (224, 216, 220)),
        (1, (176, 166, 172)),
    ]
    fill(
        layer,
        shape(
            (W, H),
            lambda d: (
                d.rectangle((x0, top + eh // 2, x0 + pw, floor - eh // 2), fill=255),
                d.ellipse((x0, floor - eh, x0 + pw, floor), fill=255),
            ),
        ),
        columns(pw, ph, stone),
        (x0, top),
    )
    fill(
        layer,
        shape((W, H), lambda d: d.ellipse((x0, top, x0 + pw, top + eh), fill=255)),
        Image.new("RGB", (W, H), (252, 250, 250)),
    )
    soft_shadow(
        img, (x0 - pw * 0.05, floor - eh * 0.5, x0 + pw * 1.15, floor + eh * 0.4), 18 * SS, 110
    )
    img.paste(layer, (0, 0), layer)
    # blossom branch shadow on the wall
    br = Image.new("L", (W, H), 0)
    brd = ImageDraw.Draw(br)
    rng = random.Random(6)
    brd.line(
        [(W * 1.0, H * 0.05), (W * 0.86, H * 0.14), (W * 0.74, H * 0.2), (W * 0.66, H * 0.3)],
        fill=50,
        width=8 * SS,
        joint="curve",
    )
    for _ in range(26):
        x, y = W * rng.uniform(0.64, 0.98), H * rng.uniform(0.04, 0.34)
        s = rng.uniform(10, 22) * SS
        brd.ellipse((x - s, y - s, x + s, y + s), fill=40)
    img.paste((120, 100, 130), (0, 0), br.filter(ImageFilter.GaussianBlur(10 * SS)))
    petals(img, floor - ph, W, H, seed=12, count=10, color=(248, 190, 206))
    finish(img, (1024, 768), path, seed=6)


# --------------------------------------------------------------------------- turntable video


def turntable_frame(angle: float, size: int = 720) -> Image.Image:
    """A square perfume bottle (and cap) rotating about its vertical axis, orthographic view."""
    W = H = size * SS
    img = backdrop(
        W, H, ((246, 214, 220), (251, 232, 226)), ((240, 214, 206), (222, 190, 184)), 0.72
    )
    floor = int(H * 0.80)
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    light = math.radians(-35)  # light from camera-left

    def prism(half: float, y0: float, y1: float, colors: list[RGB], label: bool) -> None:
        faces = []
        for k in range(4):
            a0 = angle + math.radians(45 + 90 * k)
            a1 = a0 + math.radians(90)
            normal = (a0 + a1) / 2
            if math.cos(normal) <= 0.02:  # facing away from camera (camera looks along -z)
                continue
            xa, xb = sorted(
                (
                    W / 2 + half * math.sqrt(2) * math.sin(a0),
                    W / 2 + half * math.sqrt(2) * math.sin(a1),
                )
            )
            shade = 0.55 + 0.45 * max(0.0, math.cos(normal - light))
            faces.append((xa, xb, k, shade, math.cos(normal)))
        for xa, xb, k, shade, facing in faces:
            base = colors[k % len(colors)]
            col = tuple(min(255, int(c * shade)) for c in base)
            d.rectangle((xa, y0, xb, y1), fill=(*col, 255))
            if label and k == 0 and xb - xa > 8 * SS:
                lw = (xb - xa) * 0.62
                d.rectangle(
                    (
                        (xa + xb) / 2 - lw / 2,
                        y0 + (y1 - y0) * 0.42,
                        (xa + xb) / 2 + lw / 2,
                        y0 + (y1 - y0) * 0.66,
                    ),
                    fill=(250, 244, 236, 255),
                    outline=(190, 150, 90, 255),
                    width=2 * SS,
                )
            d.line((xa, y0, xa, y1), fill=(255, 255, 255, int(90 * facing)), width=2 * SS)

    bh = H * 0.40
    prism(W * 0.14, floor - bh, floor, [(238, 168, 186), (226, 152, 172)], True)
    prism(W * 0.035, floor - bh - H * 0.035, floor - bh, [(214, 176, 100)], False)
    prism(
        W * 0.075,
        floor - bh - H * 0.15,
        floor - bh - H * 0.035,
        [(232, 196, 120), (214, 176, 100)],
        False,
    )
    soft_shadow(img, (W * 0.28, floor - H * 0.02, W * 0.78, floor + H * 0.03), 14 * SS, 120)
    reflect(img, layer, floor)
    img.paste(layer, (0, 0), layer)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def product_turntable(path: Path, seconds: float = 3.5, fps: int = 24) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg not found on PATH (apt-get install ffmpeg), or pass --no-video")
    frames = int(seconds * fps)
    cmd = [
        ffmpeg,
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        "720x720",
        "-framerate",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-an",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        str(path),
    ]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        for i in range(frames):
            proc.stdin.write(turntable_frame(2 * math.pi * i / frames).tobytes())
        proc.stdin.close()
        if proc.wait():
            raise SystemExit(f"ffmpeg failed with exit code {proc.returncode}")
    print(
        f"wrote {path.name}  720x720  {frames} frames @ {fps} fps  {path.stat().st_size // 1024} KB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: next to this script)"
    )
    parser.add_argument("--no-video", action="store_true", help="skip product_turntable.mp4")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    perfume_bottle(args.out / "perfume_bottle.jpg")
    sneaker_side(args.out / "sneaker_side.png")
    ceramic_mug(args.out / "ceramic_mug.jpg")
    wrist_watch(args.out / "wrist_watch.png")
    canvas_backpack(args.out / "canvas_backpack.jpg")
    studio_backdrop(args.out / "studio_backdrop.jpg")
    if not args.no_video:
        product_turntable(args.out / "product_turntable.mp4")


if __name__ == "__main__":
    main()
