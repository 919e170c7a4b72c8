"""Stored crops: encode/decode HxWx4 BGRA uint8 images, masks to alpha, premultiplied resizing."""
import cv2
import numpy as np

from xpaste.utils.checks import check_choice
from .schema import UINT16_MAX

#: Supported encodings of the stored crops and their OpenCV extension.
IMAGE_FORMATS: dict[str, str] = {'webp': '.webp', 'png': '.png'}
#: Encoding of stored crops unless a writer is told otherwise.
DEFAULT_IMAGE_FORMAT = 'webp'
#: WebP quality of stored crops unless a writer is told otherwise.
DEFAULT_QUALITY = 95
PNG_COMPRESSION = 3


def check_image_format(image_format: str) -> str:
    """Return ``image_format`` if it is one of :data:`IMAGE_FORMATS`, else raise ``ValueError``."""
    return check_choice('image_format', image_format, sorted(IMAGE_FORMATS))


def encode_bgra(bgra: np.ndarray, image_format: str = DEFAULT_IMAGE_FORMAT,
                quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an HxWx4 BGRA uint8 crop.

    Args:
        bgra (np.ndarray): HxWx4 uint8 image, alpha in channel 3.
        image_format (str): ``'webp'`` (lossy colour, lossless alpha) or ``'png'`` (lossless).
            Defaults to ``'webp'``.
        quality (int): WebP quality 1..100 (ignored for PNG). Defaults to 95.

    Returns:
        bytes: Encoded image.
    """
    check_image_format(image_format)
    if image_format == 'webp':
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    ok, buf = cv2.imencode(IMAGE_FORMATS[image_format], bgra, params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {bgra.shape} crop as {image_format!r}')
    return buf.tobytes()


def decode_bgra(data: bytes) -> np.ndarray:
    """Decode an encoded crop to HxWx4 BGRA uint8 (opaque images get alpha 255).

    Args:
        data (bytes): Encoded image (any format OpenCV reads).

    Returns:
        np.ndarray: HxWx4 uint8.

    Raises:
        ValueError: If the bytes cannot be decoded to an 8-bit image.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ValueError('cannot decode an empty byte string')
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ValueError(f'OpenCV failed to decode {buf.size} bytes: {e}') from e
    if img is None:
        raise ValueError(f'OpenCV could not decode {buf.size} bytes (not a WebP/PNG image?)')
    if img.dtype != np.uint8:
        raise ValueError(f'decoded image has dtype {img.dtype}, expected uint8')
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    if img.shape[2] != 4:
        raise ValueError(f'decoded image has {img.shape[2]} channels, expected 3 or 4')
    return img


def mask_to_alpha(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """An HxW foreground mask as a uint8 alpha channel.

    Args:
        mask (np.ndarray): bool, integer 0/1 or 0..255, or float in [0, 1].
        shape (tuple): The image's ``(H, W)``; the mask must have it.

    Returns:
        np.ndarray: HxW uint8 (bool and 0/1 masks become 0/255, floats are scaled by 255).
    """
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f'mask must have the image shape {shape}, got {mask.shape}')
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    if np.issubdtype(mask.dtype, np.floating):
        if mask.size and (np.nanmin(mask) < 0 or np.nanmax(mask) > 1):
            raise ValueError('a float mask must lie in [0, 1], got range '
                             f'[{np.nanmin(mask)}, {np.nanmax(mask)}]')
        return np.rint(np.nan_to_num(mask) * 255).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.integer):
        lo, hi = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f'an integer mask must lie in [0, 255], got range [{lo}, {hi}]')
        return (mask.astype(np.uint8) * 255) if hi <= 1 else mask.astype(np.uint8)
    raise TypeError(f'mask must be bool, integer or float, got dtype {mask.dtype}')


def resize_bgra(bgra: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGRA crop with premultiplied alpha (no colour bleeding from transparent pixels).

    Args:
        bgra (np.ndarray): HxWx4 uint8.
        size (tuple[int, int]): Output ``(width, height)``.

    Returns:
        np.ndarray: Resized HxWx4 uint8 (``INTER_AREA`` when shrinking, else ``INTER_LINEAR``).
    """
    h, w = bgra.shape[:2]
    interp = cv2.INTER_AREA if size[0] <= w and size[1] <= h else cv2.INTER_LINEAR
    f = bgra.astype(np.float32)
    alpha = f[..., 3:4]
    f[..., :3] *= alpha / 255.0
    r = cv2.resize(f, size, interpolation=interp)
    if r.ndim == 2:  # 1-pixel outputs keep their channel axis
        r = r.reshape(size[1], size[0], 4)
    a = r[..., 3:4]
    r[..., :3] = np.where(a > 0, r[..., :3] * 255.0 / np.maximum(a, 1e-6), 0.0)
    return np.clip(np.rint(r), 0, 255).astype(np.uint8)


def prepare_crop(img: np.ndarray, *, crop: bool, max_side: int | None,
                 what: str = 'instance') -> np.ndarray:
    """The crop a bank stores: cut to the tight box of ``alpha > 0`` and capped at ``max_side``.

    Args:
        img (np.ndarray): HxWx4 uint8 BGRA.
        crop (bool): Cut to the tight box of ``alpha > 0``.
        max_side (int, optional): Downscale (premultiplied ``INTER_AREA``) so that the longest
            side is at most this; ``None`` keeps the size.
        what (str): Description of the instance in error messages. Defaults to ``'instance'``.

    Returns:
        np.ndarray: hxwx4 uint8 with ``1 <= h, w <= 65535``.
    """
    if crop:
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(img[..., 3]))
        if w == 0 or h == 0:
            raise ValueError(f'{what} has an empty alpha')
        img = img[y:y + h, x:x + w]
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f'{what} has shape {img.shape}')
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, min(max_side, round(w * scale))), max(1, min(max_side, round(h * scale))))
        img = resize_bgra(img, size)
        h, w = img.shape[:2]
    if max(h, w) > UINT16_MAX:
        raise ValueError(f'crop of {h}x{w} exceeds {UINT16_MAX} px; set max_side')
    return img
