"""The names every table, plot and claim uses, in one place.

* the seven basic expressions in the project's canonical order (:data:`LABELS`; integer labels
  index it everywhere, ``-1`` means unknown) and :func:`class_names` for any number of classes;
* the paper's backbones and training modes, and how tables name them.

The datasets' display names are declared by each dataset's record
(:data:`omnifer_lib.data.registry.DATASET_NAMES`; ``names.DATASET_NAMES`` still reads them).
"""
from __future__ import annotations

from typing import Tuple

#: The seven basic expressions, in the order every file, table and figure uses.
LABELS: Tuple[str, ...] = ("neutral", "anger", "disgust", "fear", "happy", "sad", "surprise")
#: CK+'s eighth class, kept only when a CK+ loader is asked to.
CONTEMPT = "contempt"


#: The paper's two backbone families and their names in its tables.
FAMILY_NAMES = {"vgg": "VGG-F", "resnet": "ResNet-34"}
#: Display names of the backbones of ``omnifer_lib.models`` (the small ones play a paper family).
BACKBONE_NAMES = {"vgg_face": "VGG-F", "resnet34": "ResNet-34", "vgg_small": "VGG-small (VGG-F's role)",
                  "resnet_small": "ResNet-small (ResNet-34's role)"}

#: The final-training modes of §4.4: the anchor alone, with the vanilla or the distilled auxiliary samples.
MODES: Tuple[str, ...] = ("anchor", "anchor+VAS", "anchor+DAS")
#: How tables name the modes.
MODE_NAMES = {"anchor": "baseline", "anchor+VAS": "VAS", "anchor+DAS": "DAS"}


def class_names(num_classes: int) -> Tuple[str, ...]:
    """Names of classes ``0 .. num_classes - 1``: the seven expressions (plus contempt for eight),
    else ``class_0``, ``class_1``, ..."""
    if num_classes == len(LABELS):
        return LABELS
    if num_classes == len(LABELS) + 1:
        return (*LABELS, CONTEMPT)
    return tuple(f"class_{k}" for k in range(num_classes))


def family(backbone: str) -> str:
    """``"vgg"`` or ``"resnet"``: which of the paper's two families a backbone plays."""
    for fam in FAMILY_NAMES:
        if backbone.startswith(fam):
            return fam
    raise ValueError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONE_NAMES)}")


def display_backbone(backbone: str) -> str:
    """E.g. ``"VGG-small (VGG-F's role)"`` for ``"vgg_small"``."""
    return BACKBONE_NAMES.get(backbone, backbone)


def __getattr__(name: str):
    # names.DATASET_NAMES, kept for code written before the dataset records: read from them when asked
    # for (a module-level __getattr__, so importing this module, which omnifer_lib.data does, loads no dataset)
    if name == "DATASET_NAMES":
        from omnifer_lib.data.registry import DATASET_NAMES

        return DATASET_NAMES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
