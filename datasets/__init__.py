"""Dataset plugins, one file each; importing this package registers them."""

from noisybench.datasets import blobs, digits, mnist1d  # noqa: F401
