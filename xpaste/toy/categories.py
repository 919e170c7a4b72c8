"""Categories of the toy LVIS world: shape x colour x texture.

Every category is a combination of one of :data:`TOY_SHAPES`, one of :data:`TOY_COLOURS` and one
of :data:`TOY_TEXTURES`, e.g. ``red_striped_star``. Categories are chosen so that any two differ
in as many attributes as possible (with 30 or fewer classes, any two differ in at least two of
shape, colour and texture in practice), and each attribute value is used about
equally often.
"""
import itertools
from dataclasses import dataclass

import numpy as np

from xpaste.utils.checks import check_choice, check_number

#: Shape names, drawn by :func:`xpaste.toy.render.draw_instance`.
TOY_SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon', 'crescent',
              'heart', 'arrow')

#: Colour name -> hue in degrees (0-360). The hues are far apart, so the hue jitter of an
#: instance never makes one colour look like another.
TOY_COLOURS = {
    'red': 0.0,
    'orange': 28.0,
    'yellow': 55.0,
    'green': 120.0,
    'cyan': 182.0,
    'blue': 228.0,
    'purple': 275.0,
    'pink': 320.0,
}

#: Texture name -> adjective used in category names.
TOY_TEXTURES = {
    'solid': 'plain',
    'stripes': 'striped',
    'dots': 'dotted',
    'checker': 'checkered',
}

_TEXTURE_PHRASES = {
    'solid': 'of a single plain colour',
    'stripes': 'covered with light stripes',
    'dots': 'covered with light dots',
    'checker': 'covered with a light checkerboard pattern',
}

#: Mean object extent of a category, as a fraction of the shorter image side.
TOY_SIZE_RANGE = (0.14, 0.30)


@dataclass(frozen=True)
class ToyCategory:
    """One category of the toy world.

    Args:
        id (int): LVIS category id, 1-based.
        shape (str): One of :data:`TOY_SHAPES`.
        colour (str): One of the keys of :data:`TOY_COLOURS`.
        texture (str): One of the keys of :data:`TOY_TEXTURES`.
        size (float): Mean extent of an instance in a scene, as a fraction of the shorter image
            side. Instances vary around it. Defaults to 0.2.
    """

    id: int
    shape: str
    colour: str
    texture: str
    size: float = 0.2

    def __post_init__(self):
        check_number('ToyCategory.id', self.id, 1, integer=True)
        check_choice('ToyCategory.shape', self.shape, TOY_SHAPES)
        check_choice('ToyCategory.colour', self.colour, TOY_COLOURS)
        check_choice('ToyCategory.texture', self.texture, TOY_TEXTURES)
        check_number('ToyCategory.size', self.size, 0, 1, lo_open=True, hi_open=True)

    @property
    def name(self) -> str:
        """Readable LVIS-style name, e.g. ``'red_striped_star'``."""
        return f'{self.colour}_{TOY_TEXTURES[self.texture]}_{self.shape}'

    @property
    def hue(self) -> float:
        """Hue of the colour in degrees (0-360)."""
        return TOY_COLOURS[self.colour]

    @property
    def synonyms(self) -> list[str]:
        """LVIS-style synonyms; the first one is the name itself."""
        adjective = TOY_TEXTURES[self.texture]
        return [
            self.name, f'{adjective}_{self.colour}_{self.shape}',
            f'{self.colour}_{self.shape}_{self.texture}'
        ]

    @property
    def definition(self) -> str:
        """A definition sentence (LVIS ``def`` field)."""
        return f'a {self.colour} {self.shape}-shaped object {_TEXTURE_PHRASES[self.texture]}'

    @property
    def synset(self) -> str:
        """A WordNet-synset-like identifier (LVIS ``synset`` field)."""
        return f'{self.name}.n.01'

    @classmethod
    def from_name(cls, name: str, id: int = 1, size: float = 0.2) -> 'ToyCategory':
        """Rebuild a category from its name, e.g. the ``name`` of an LVIS category record.

        Args:
            name (str): ``'{colour}_{texture adjective}_{shape}'``, e.g. ``'red_striped_star'``.
            id (int): Category id. Defaults to 1.
            size (float): Mean relative size (not part of the name). Defaults to 0.2.

        Returns:
            ToyCategory: The category drawn under that name.
        """
        parts = name.split('_') if isinstance(name, str) else []
        textures = {adjective: texture for texture, adjective in TOY_TEXTURES.items()}
        if len(parts) != 3 or parts[0] not in TOY_COLOURS or parts[1] not in textures \
                or parts[2] not in TOY_SHAPES:
            raise ValueError(f'not a toy category name (colour_texture_shape, e.g. '
                             f'"red_striped_star"), got {name!r}')
        return cls(id=id, shape=parts[2], colour=parts[0], texture=textures[parts[1]], size=size)

    def to_lvis(self) -> dict:
        """The LVIS v1 category record without the statistics of a split.

        Returns:
            dict: ``id``, ``name``, ``synonyms``, ``def`` and ``synset``. ``frequency``,
            ``image_count`` and ``instance_count`` are added from the train split by
            :func:`xpaste.toy.make_toy_lvis`.
        """
        return dict(
            id=self.id,
            name=self.name,
            synonyms=self.synonyms,
            synset=self.synset,
            **{'def': self.definition})


def _attribute_combinations() -> list[tuple[int, int, int]]:
    return list(
        itertools.product(
            range(len(TOY_SHAPES)), range(len(TOY_COLOURS)), range(len(TOY_TEXTURES))))


def max_toy_categories() -> int:
    """The number of distinct shape x colour x texture combinations."""
    return len(TOY_SHAPES) * len(TOY_COLOURS) * len(TOY_TEXTURES)


def toy_categories(num_classes: int = 30, seed: int = 0) -> list[ToyCategory]:
    """Choose ``num_classes`` visually distinct categories.

    Combinations are picked greedily: each new one maximises its smallest number of differing
    attributes to the categories already chosen, then balances how often each shape, colour and
    texture is used; ties are broken by a seeded shuffle. The first ``k`` categories for a seed do
    not depend on ``num_classes``.

    Args:
        num_classes (int): Number of categories, 1 to :func:`max_toy_categories`. Defaults to 30.
        seed (int): Seed of the choice and of the categories' mean sizes. Defaults to 0.

    Returns:
        list[ToyCategory]: Categories with ids ``1..num_classes``.
    """
    limit = max_toy_categories()
    num_classes = check_number('num_classes', num_classes, 1, limit, integer=True)
    rng = np.random.default_rng([int(seed), 0x70C])
    candidates = _attribute_combinations()
    order = rng.permutation(len(candidates))
    candidates = np.asarray([candidates[i] for i in order])  # (M, 3)
    min_dist = np.full(len(candidates), 3)
    usage = [np.zeros(n, dtype=int) for n in (len(TOY_SHAPES), len(TOY_COLOURS), len(TOY_TEXTURES))]
    available = np.ones(len(candidates), dtype=bool)
    chosen = []
    for _ in range(num_classes):
        balance = sum(usage[a][candidates[:, a]] for a in range(3))
        # Highest min distance first, then least-used attributes, then shuffled order.
        key = np.where(available, min_dist * 1000 - balance, -10**9)
        best = int(np.argmax(key))
        chosen.append(candidates[best])
        available[best] = False
        for a in range(3):
            usage[a][candidates[best, a]] += 1
        dist = (candidates != candidates[best]).sum(axis=1)
        min_dist = np.minimum(min_dist, dist)
    sizes = rng.uniform(*TOY_SIZE_RANGE, size=num_classes)
    colours = list(TOY_COLOURS)
    textures = list(TOY_TEXTURES)
    return [
        ToyCategory(
            id=i + 1,
            shape=TOY_SHAPES[s],
            colour=colours[c],
            texture=textures[t],
            size=round(float(sizes[i]), 4)) for i, (s, c, t) in enumerate(chosen)
    ]
