"""The activation colours on a projector and for colour-blind eyes: contrast, and differences under simulated CVD.

Colour-vision deficiency is simulated with the matrices of Machado, Oliveira and Fernandes (2009),
severity 1, applied to linear sRGB; differences are CIEDE2000 in CIELAB (D65).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from actlab import plotting
from actlab.activations import BUILTIN_NAMES, SOURCE_ACTIVATIONS

README = Path(__file__).resolve().parent.parent / "README.md"
BUILT_IN = list(plotting.PALETTE)
MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
WHITE = np.array([0.95047, 1.0, 1.08883])
CLOSE = 20.0


def linear_rgb(hex_colour: str) -> np.ndarray:
    srgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def contrast_with_white(hex_colour: str) -> float:
    return 1.05 / (float(linear_rgb(hex_colour) @ [0.2126, 0.7152, 0.0722]) + 0.05)


def lab(linear: np.ndarray) -> np.ndarray:
    xyz = SRGB_TO_XYZ @ np.clip(linear, 0, 1) / WHITE
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    mean_c = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(mean_c**7 / (mean_c**7 + 25**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = math.degrees(math.atan2(b1, a1)) % 360, math.degrees(math.atan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    big_dh = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    mean_l, mean_cp = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        mean_h = h1 + h2
    elif abs(h1 - h2) <= 180:
        mean_h = (h1 + h2) / 2
    else:
        mean_h = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(mean_h - 30)) + 0.24 * math.cos(math.radians(2 * mean_h))
         + 0.32 * math.cos(math.radians(3 * mean_h + 6)) - 0.20 * math.cos(math.radians(4 * mean_h - 63)))
    rotation = -math.sin(math.radians(60 * math.exp(-(((mean_h - 275) / 25) ** 2)))) * 2 * math.sqrt(
        mean_cp**7 / (mean_cp**7 + 25**7))
    sl = 1 + 0.015 * (mean_l - 50) ** 2 / math.sqrt(20 + (mean_l - 50) ** 2)
    sc, sh = 1 + 0.045 * mean_cp, 1 + 0.015 * mean_cp * t
    return math.sqrt(((l2 - l1) / sl) ** 2 + ((c2 - c1) / sc) ** 2 + (big_dh / sh) ** 2
                     + rotation * ((c2 - c1) / sc) * (big_dh / sh))


def views(hex_colour: str) -> dict[str, np.ndarray]:
    """The colour as seen in normal vision and under each simulated deficiency, in CIELAB."""
    linear = linear_rgb(hex_colour)
    return {"normal": lab(linear), **{name: lab(np.array(matrix) @ linear) for name, matrix in MACHADO.items()}}


def smallest_difference(a: str, b: str) -> float:
    seen_a, seen_b = views(plotting.PALETTE[a]), views(plotting.PALETTE[b])
    return min(ciede2000(seen_a[view], seen_b[view]) for view in seen_a)


def close_pairs() -> set[frozenset[str]]:
    return {frozenset(pair) for pair in itertools.combinations(BUILT_IN, 2) if smallest_difference(*pair) < CLOSE}


def test_ciede2000_matches_sharmas_reference_pairs():
    assert ciede2000(np.array([50, 2.6772, -79.7751]), np.array([50, 0, -82.7485])) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000(np.array([50, 2.5, 0]), np.array([73, 25, -18])) == pytest.approx(27.1492, abs=1e-4)


def test_every_activation_colour_has_3_to_1_contrast_against_white():
    colours = {**plotting.PALETTE, **{f"extra {i}": c for i, c in enumerate(plotting.EXTRA_COLORS)}}
    faint = {name: round(contrast_with_white(c), 2) for name, c in colours.items() if contrast_with_white(c) < 3}
    assert not faint


def test_the_source_activations_differ_by_colour_in_every_simulation():
    close = {pair for pair in close_pairs() if pair <= set(SOURCE_ACTIVATIONS)}
    assert not close


def test_close_colours_differ_in_line_style_and_marker():
    for pair in close_pairs():
        a, b = (plotting.activation_style(name) for name in sorted(pair))
        assert a["linestyle"] != b["linestyle"] and a["marker"] != b["marker"], sorted(pair)


def test_the_readme_names_exactly_the_close_pairs():
    line = next(line for line in README.read_text().splitlines() if line.startswith("Pairs closer than"))
    named = {frozenset(pair.split(" and ")) for pair in line.split(": ", 1)[1].rstrip(".").split(", ")}
    assert named == close_pairs()


def test_the_palette_covers_every_built_in_activation_once():
    assert set(plotting.PALETTE) == BUILTIN_NAMES
    assert len(set(plotting.PALETTE.values())) == len(plotting.PALETTE)
