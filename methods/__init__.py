"""Method plugins, one file each; importing this package registers them."""

from noisybench.methods import alr, ce, dividemix, elr, gce  # noqa: F401
