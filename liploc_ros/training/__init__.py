"""Training and evaluation of LIP-Loc models (``liploc train``, ``liploc eval``).

The modules import torch; import the one you need (``liploc_ros.training.train``,
``...evaluate``, ``...metrics``) rather than this package's names, which are re-exported
only for convenience.
"""

from liploc_ros.training.config import TrainConfig, load_train_config
from liploc_ros.training.evaluate import EvalResult, evaluate_pictures, save_eval_outputs
from liploc_ros.training.train import TrainResult, train

__all__ = [
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "evaluate_pictures",
    "load_train_config",
    "save_eval_outputs",
    "train",
]
