"""The facts plugins declare, so that no plugin tests another's name.

A dataset declares its **family** (which benchmark its images and published recipes belong to)
and, for re-labelled versions of a benchmark, the family whose images it shares
(``base_family``: CIFAR-10N's images are CIFAR-10's). A noise model declares its **kind**.
Methods read both from the :class:`Setting` they are resolved for, and key their published
values on them; they never name a dataset or match noise-spec strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NoiseKind(str, Enum):
    """What a noise model does to the labels, as methods and reports need to know it."""

    NONE = "none"
    SYMMETRIC = "symmetric"
    CLASS_CONDITIONAL = "class-conditional"  # a class map: asymmetric, pair-flip
    INSTANCE_DEPENDENT = "instance-dependent"
    HUMAN = "human"  # real annotators' labels (CIFAR-N) or a label file


#: Dataset families with published recipes and numbers. Datasets no paper ran declare none ("").
CIFAR_10 = "CIFAR-10"
CIFAR_100 = "CIFAR-100"
CIFAR_10N = "CIFAR-10N"
CIFAR_100N = "CIFAR-100N"
ANIMAL_10N = "ANIMAL-10N"
CLOTHING_1M = "Clothing1M"
WEB_VISION = "mini-WebVision"
#: The two protocols a run can follow (docs/protocols.md): one recipe per dataset for every method,
#: or each method's own published recipe. Datasets may declare further shared recipes (e.g. ``fast``).
SHARED = "shared"
PAPER = "paper"
PROTOCOLS = (SHARED, PAPER)

#: Families of web-scale real-noise benchmarks (one class-balanced draw per epoch, pretrained or large nets).
WEB_SCALE = frozenset({CLOTHING_1M, WEB_VISION})


@dataclass(frozen=True)
class Setting:
    """What a method may condition its hyperparameters on.

    ``dataset`` and ``noise_family`` are the names, for messages only: decide on ``family``,
    ``base_family``, ``noise_kind``, ``class_map``, ``noise_rate`` and ``noise_arg``.

    ``protocol`` is the run's protocol; ``paper_epochs`` is the length of the method's own
    published schedule for this family (None without one); ``paper_schedule`` is true when the
    run trains on exactly that schedule (``protocol = "paper"`` with the paper's recipe and no
    epoch override), so epoch-based hyperparameters keep their paper values.
    """

    dataset: str
    noise_family: str
    noise_rate: float | None
    num_classes: int
    epochs: int
    noise_kind: NoiseKind = NoiseKind.SYMMETRIC
    family: str = ""
    base_family: str = ""
    train_size: int | None = None
    protocol: str = SHARED
    paper_epochs: int | None = None  # epochs of the method's own recipe for this family, to scale epoch-based hparams
    noise_arg: str | None = None  # the spec's argument when it is not a rate, e.g. "worst" in human:worst
    paper_schedule: bool = False
    class_map: str = ""  # which class map class-conditional noise follows: "dataset" (asym), "pair", ...
    milestones: tuple[int, ...] = ()  # the run's step-schedule lr milestones (none for other schedules)

    @property
    def images(self) -> str:
        """The family whose images this dataset has (its own, or ``base_family``)."""
        return self.base_family or self.family
