"""Dataset plugins, one file each; importing this package registers them."""

from noisybench.datasets import animal10n, blobs, cifar, cifarn, clothing1m, digits, mnist1d, webvision  # noqa: F401  # noqa: F401
