"""The built-in corruptions: what webcams, phones and video calls do to a face crop, at five severities.

Every function takes uint8 images ``(N, H, W)`` or ``(N, H, W, 3)``, a severity 1-5 and a numpy
generator, and returns uint8 images of the same shape. Strengths are relative to the image size, so a
48 px FER2013 crop and a 96 px photo are corrupted alike. The random draws (noise fields, positions,
angles) do not depend on the severity: with the same seed, severity 5 is severity 1's corruption made
stronger, which is what makes the five severities monotone. The strengths were chosen on 48 px faces so
that severity 1 is a mild, common degradation and severity 5 leaves the face barely readable by a person.
"""

from __future__ import annotations

import cv2
import numpy as np

# --- helpers ------------------------------------------------------------------------------------------


def _as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _level(table: tuple[float, ...], severity: int) -> float:
    return table[severity - 1]


def _per_image(images: np.ndarray, function) -> np.ndarray:
    """``function(image, index)`` on each image, stacked (OpenCV works one image at a time)."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        result = function(image, i)
        out[i] = result.reshape(image.shape)
    return out


def _grid(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns on [0, 1] (broadcastable to ``(N, H, W)``)."""
    height, width = images.shape[1:3]
    return (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height, \
        (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width


def _paint(images: np.ndarray, mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``images`` with ``mask`` (N, H, W) set to ``value`` (N,) grey levels (0-255)."""
    out = images.copy()
    fill = np.broadcast_to(value.reshape(-1, 1, 1), mask.shape).astype(np.uint8)
    if images.ndim == 4:
        out[mask] = fill[mask][:, None]
    else:
        out[mask] = fill[mask]
    return out


# --- noise --------------------------------------------------------------------------------------------


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: additive Gaussian noise of standard deviation 0.03-0.18 (of the full range)."""
    sigma = _level((0.03, 0.06, 0.09, 0.13, 0.18), severity)
    return _to_uint8(_as_float(images) + sigma * rng.standard_normal(images.shape, dtype=np.float32))


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise on 1-12% of the pixels (the pixels hit at a severity include the lower ones')."""
    amount = _level((0.01, 0.03, 0.05, 0.08, 0.12), severity)
    hit, salt = rng.random(images.shape) < amount, rng.random(images.shape) < 0.5
    return np.where(hit, np.where(salt, 255, 0), images).astype(np.uint8)


# --- blur ---------------------------------------------------------------------------------------------


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus lens: a disc kernel of radius 2-6% of the image side (1-3 px on 48 px)."""
    radius = _level((0.02, 0.03, 0.04, 0.05, 0.065), severity) * images.shape[1]
    size = 2 * int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    # Anti-aliased disc: the share of each tap inside the radius, so radius 1.5 differs from radius 1.
    disc = np.clip(radius + 0.5 - np.sqrt(yy**2 + xx**2), 0, 1).astype(np.float32)
    disc /= disc.sum()
    return _per_image(images, lambda image, _: cv2.filter2D(image, -1, disc, borderType=cv2.BORDER_REFLECT))


def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Camera or head motion: a line kernel 6-23% of the image side long, at a random angle per image."""
    length = _level((0.06, 0.10, 0.14, 0.18, 0.23), severity) * images.shape[1]
    angles = rng.uniform(0, np.pi, len(images))
    size = 2 * int(np.ceil(length / 2)) + 1

    def blur(image: np.ndarray, i: int) -> np.ndarray:
        kernel = np.zeros((size, size), np.float32)
        centre = size // 2
        dx, dy = np.cos(angles[i]) * length / 2, np.sin(angles[i]) * length / 2
        cv2.line(kernel, (round(centre * 16 - dx * 16), round(centre * 16 - dy * 16)),
                 (round(centre * 16 + dx * 16), round(centre * 16 + dy * 16)), 1.0, 1, cv2.LINE_AA, shift=4)
        return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)

    return _per_image(images, blur)


# --- digital ------------------------------------------------------------------------------------------


def jpeg(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at quality 30, 20, 12, 8 and 5 (OpenCV's libjpeg)."""
    quality = int(_level((30, 20, 12, 8, 5), severity))

    def compress(image: np.ndarray, _: int) -> np.ndarray:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode a {image.shape} image")
        return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)

    return _per_image(images, compress)


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A low-resolution camera or a zoomed video call: down to 60-22% of the side (area), back up (nearest)."""
    factor = _level((0.6, 0.45, 0.35, 0.28, 0.22), severity)
    height, width = images.shape[1:3]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    return _per_image(images, lambda image, _: cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA),
                                                          (width, height), interpolation=cv2.INTER_NEAREST))


# --- lighting -----------------------------------------------------------------------------------------


def dark(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure: the intensities scaled to 60-15%."""
    return _to_uint8(_as_float(images) * _level((0.6, 0.45, 0.32, 0.22, 0.15), severity))


def overexposed(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Over-exposure: the intensities scaled by 1.4-2.8, the highlights clipping to white."""
    return _to_uint8(_as_float(images) * _level((1.4, 1.7, 2.0, 2.4, 2.8), severity))


def low_contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Haze or a flat screen: the contrast about each image's mean cut to 60-12%."""
    x = _as_float(images)
    mean = x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    return _to_uint8(mean + (x - mean) * _level((0.6, 0.45, 0.3, 0.2, 0.12), severity))


def vignette(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Lens fall-off: darkening that grows with the distance from a centre near the middle, up to 30-90%
    at the corners."""
    strength = _level((0.3, 0.45, 0.6, 0.75, 0.9), severity)
    rows, cols = _grid(images)
    cy, cx = (rng.uniform(0.4, 0.6, len(images)).reshape(-1, 1, 1) for _ in range(2))
    gain = 1 - strength * np.clip(((rows - cy) ** 2 + (cols - cx) ** 2) / 0.5, 0, 1)
    x = _as_float(images)
    return _to_uint8(x * (gain[..., None] if x.ndim == 4 else gain))


# --- occlusion ----------------------------------------------------------------------------------------


def occlusion_patch(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A hand, a microphone or a sticker: a square of side 20-52% of the image, of a random grey, centred
    at a random point (the square at a severity contains the lower severities')."""
    side = _level((0.20, 0.28, 0.36, 0.44, 0.52), severity)
    cy, cx = (rng.uniform(0.2, 0.8, len(images)).reshape(-1, 1, 1) for _ in range(2))
    grey = rng.integers(0, 256, len(images))
    rows, cols = _grid(images)
    mask = (np.abs(rows - cy) < side / 2) & (np.abs(cols - cx) < side / 2)
    return _paint(images, mask, grey)


def glasses(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Sunglasses: two dark lenses joined by a bridge over where FER crops put the eyes (about 40% down),
    lens radius 8-17% of the width."""
    radius = _level((0.08, 0.105, 0.13, 0.15, 0.17), severity)
    n = len(images)
    cy = rng.uniform(0.36, 0.44, n).reshape(-1, 1, 1)
    gap = rng.uniform(0.17, 0.2, n).reshape(-1, 1, 1)  # each lens centre's distance from the middle
    shade = rng.integers(5, 50, n)
    rows, cols = _grid(images)
    lens = lambda cx: ((cols - cx) / radius) ** 2 + ((rows - cy) / (0.75 * radius)) ** 2 <= 1
    bridge = (np.abs(rows - cy) < 0.012 + radius * 0.1) & (np.abs(cols - 0.5) < gap)
    return _paint(images, lens(0.5 - gap) | lens(0.5 + gap) | bridge, shade)


def mask(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A face mask: a light, flat band from the bottom up to 85-58% of the image height (nose to mouth),
    its top edge curved like a mask's."""
    top = _level((0.85, 0.78, 0.71, 0.64, 0.58), severity)
    n = len(images)
    tone = rng.integers(150, 240, n)
    offset = rng.uniform(-0.03, 0.03, n).reshape(-1, 1, 1)
    rows, cols = _grid(images)
    edge = top + offset + 0.12 * (cols - 0.5) ** 2 * 4  # lower at the cheeks, highest over the nose
    return _paint(images, rows >= edge, tone)


# --- geometric ----------------------------------------------------------------------------------------


def _warp(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    height, width = images.shape[1:3]
    return _per_image(images, lambda image, i: cv2.warpAffine(image, matrices[i], (width, height),
                                                              flags=cv2.INTER_LINEAR,
                                                              borderMode=cv2.BORDER_REPLICATE))


def _about_centre(images: np.ndarray, angle_deg: np.ndarray, zoom: np.ndarray) -> np.ndarray:
    height, width = images.shape[1:3]
    return np.stack([cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), float(a), float(z))
                     for a, z in zip(angle_deg, zoom)])


def shift(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A loose face detector: the face moved by 4-16% of the side in a random direction (edges repeated)."""
    distance = _level((0.04, 0.07, 0.10, 0.13, 0.16), severity) * images.shape[1]
    direction = rng.uniform(0, 2 * np.pi, len(images))
    matrices = np.zeros((len(images), 2, 3), np.float64)
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    matrices[:, 0, 2], matrices[:, 1, 2] = distance * np.cos(direction), distance * np.sin(direction)
    return _warp(images, matrices)


def rotate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A tilted head or camera: rotation by 5-25 degrees either way."""
    angle = _level((5, 10, 15, 20, 25), severity) * rng.choice([-1.0, 1.0], len(images))
    return _warp(images, _about_centre(images, angle, np.ones(len(images))))


def scale(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A tight or loose face crop: zoomed in or out (at random) by a factor of 1.08-1.40."""
    factor = _level((1.08, 1.16, 1.24, 1.32, 1.40), severity)
    zoom = np.where(rng.random(len(images)) < 0.5, factor, 1 / factor)
    return _warp(images, _about_centre(images, np.zeros(len(images)), zoom))


BUILT_IN = {
    # name: (function, family)
    "gaussian_noise": (gaussian_noise, "noise"),
    "impulse_noise": (impulse_noise, "noise"),
    "defocus_blur": (defocus_blur, "blur"),
    "motion_blur": (motion_blur, "blur"),
    "jpeg": (jpeg, "digital"),
    "pixelate": (pixelate, "digital"),
    "dark": (dark, "lighting"),
    "overexposed": (overexposed, "lighting"),
    "low_contrast": (low_contrast, "lighting"),
    "vignette": (vignette, "lighting"),
    "occlusion_patch": (occlusion_patch, "occlusion"),
    "glasses": (glasses, "occlusion"),
    "mask": (mask, "occlusion"),
    "shift": (shift, "geometric"),
    "rotate": (rotate, "geometric"),
    "scale": (scale, "geometric"),
}
