"""Prompt templates and class-name handling for the text encoder (CAT-Seg's conventions).

CAT-Seg (Cho et al., CVPR 2024) formats every class with a list of templates and encodes the
prompts with CLIP's text encoder. Its released ViT-B/16 and ViT-L/14 configurations use the single
template ``"A photo of a {} in the scene"``; its base configuration names the 80-template ImageNet
ensemble of the CLIP paper (Radford et al., 2021). A class name holding synonyms separated by
``", "`` (``"person, child, girl"``) is reduced to its first synonym.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = [
    "IMAGENET_TEMPLATES",
    "SINGLE_TEMPLATES",
    "TemplateSet",
    "first_synonym",
    "format_prompts",
    "get_templates",
]

TemplateSet = Literal["single", "imagenet"]

#: The template of CAT-Seg's released configurations (``PROMPT_ENSEMBLE_TYPE: "single"``).
SINGLE_TEMPLATES: tuple[str, ...] = ("A photo of a {} in the scene",)

#: The 80 ImageNet prompt templates published with CLIP (Radford et al., 2021).
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)


def get_templates(name: TemplateSet | Sequence[str]) -> tuple[str, ...]:
    """The prompt templates of a named set, or a user's own list checked for a ``{}`` slot.

    Args:
        name: ``"single"`` (CAT-Seg's released configs: one template), ``"imagenet"`` (the 80 CLIP
            ImageNet templates), or a sequence of format strings with exactly one ``{}`` each.

    Returns:
        The templates as a tuple of strings.

    Raises:
        ValueError: an unknown set name, an empty list, or a template without exactly one ``{}``.
        TypeError: a template that is not a string.

    Example:
        >>> get_templates("single")
        ('A photo of a {} in the scene',)
        >>> len(get_templates("imagenet"))
        80
    """
    if isinstance(name, str):
        if name == "single":
            return SINGLE_TEMPLATES
        if name == "imagenet":
            return IMAGENET_TEMPLATES
        raise ValueError(
            f"templates must be 'single', 'imagenet' or a list of format strings; got the string {name!r}"
        )
    templates = tuple(name)
    if not templates:
        raise ValueError("templates must hold at least one format string; got an empty sequence")
    for t in templates:
        if not isinstance(t, str):
            raise TypeError(f"every template must be a str; got {type(t).__name__} ({t!r})")
        if t.count("{}") != 1:
            raise ValueError(f"every template must contain exactly one '{{}}' slot; got {t!r}")
    return templates


def first_synonym(class_name: str) -> str:
    """The first synonym of a CAT-Seg class name (synonyms are separated by ``", "``).

    Example:
        >>> first_synonym("person, child, girl")
        'person'
        >>> first_synonym("traffic light")
        'traffic light'
    """
    if not isinstance(class_name, str):
        raise TypeError(f"class names must be str; got {type(class_name).__name__} ({class_name!r})")
    return class_name.split(", ")[0]


def format_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, class-major: ``[t.format(first_synonym(c)) for c in class_names for t in templates]``.

    Args:
        class_names: ``N_C`` class names (synonyms allowed).
        templates: ``P`` format strings.

    Returns:
        ``N_C * P`` prompts; prompt ``c * P + p`` is template ``p`` filled with class ``c``.

    Raises:
        ValueError: an empty class list.

    Example:
        >>> format_prompts(["cat, kitty", "dog"], ["a {}.", "the {}."])
        ['a cat.', 'the cat.', 'a dog.', 'the dog.']
    """
    if isinstance(class_names, str):
        raise TypeError("class_names must be a sequence of class names, not a single string")
    if len(class_names) == 0:
        raise ValueError("class_names must hold at least one class; got an empty sequence")
    return [t.format(first_synonym(c)) for c in class_names for t in templates]
