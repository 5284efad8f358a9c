"""Noise-model plugins, one module per family or group of related families: every module in this folder
is discovered and registers its families (``@register_noise``); ``_*.py`` modules hold shared helpers.

The spec, the base class and the realisation are :mod:`noisybench.noise`. A run's fingerprint pins
its family's module (and the helpers it imports), so a new or edited family stales no other run.
"""
