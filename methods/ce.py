"""CE: plain cross-entropy on the observed labels (``methods.md`` §3)."""

from __future__ import annotations

from noisybench.method import Method
from noisybench.registry import register_method


@register_method("ce")
class CE(Method):
    """Standard cross-entropy; the baseline every table starts from."""
    display_name = "CE"
