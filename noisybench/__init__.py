"""noisybench: a benchmark suite for learning with noisy labels.

Public API (the few verbs most users need)::

    from noisybench import list_methods, create_method, register_method, load_results
"""

from noisybench.errors import ConfigError, NoisybenchError, UnknownNameError
from noisybench.registry import (
    list_datasets,
    list_methods,
    list_models,
    list_noises,
    register_dataset,
    register_method,
    register_model,
    register_noise,
)

__all__ = [
    "ConfigError", "NoisybenchError", "UnknownNameError", "create_method", "list_datasets",
    "list_methods", "list_models", "list_noises", "load_results", "register_dataset",
    "register_method", "register_model", "register_noise",
]
__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: keep `import noisybench` free of torch and pandas
    if name == "create_method":
        from noisybench.method import create_method

        return create_method
    if name == "load_results":
        from noisybench.store.results import load_results

        return load_results
    raise AttributeError(name)
