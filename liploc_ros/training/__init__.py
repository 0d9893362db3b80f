"""Training of LIP-Loc models (``liploc train``) and a model's Recall@K on pictures
(``liploc eval``). The modules import torch; this package imports nothing, so import the
module you need:

- :mod:`~liploc_ros.training.config`: ``TrainConfig``, ``load_train_config``
- :mod:`~liploc_ros.training.train`: the loop (``train``); :mod:`~.steps`, :mod:`~.schedule`,
  :mod:`~.training_state` (resumable state), :mod:`~.distributed` (torchrun)
- :mod:`~liploc_ros.training.run_data`, :mod:`~.data`, :mod:`~.sources`, :mod:`~.pictures`,
  :mod:`~.picture_cache`, :mod:`~.augment`, :mod:`~.cross_pairs`: the data of a run
- :mod:`~liploc_ros.training.evaluate`: a model's Recall@K on a drive (the maths are
  :mod:`liploc_ros.evaluation.retrieval`)
- :mod:`~liploc_ros.training.plots`: the training curves
"""
