"""Method plugins, one file each; importing this package registers them."""

from noisybench.methods import ce, gce  # noqa: F401
