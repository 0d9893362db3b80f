"""Camera localization in a LiDAR map: frame -> embedding -> top-k -> pose estimate.

Import the module you need: this package imports nothing (``import liploc_ros.localization``
loads no torch), so that the light modules (configs, the estimate's maths) stay light.

- :mod:`~liploc_ros.localization.localizer`: ``Localizer`` (embedder + map), ``FrameEstimator``
- :mod:`~liploc_ros.localization.factory`: a model file and a map file -> the localizer of a mode
- :mod:`~liploc_ros.localization.mode`, :mod:`~liploc_ros.localization.mode_registry`,
  :mod:`~liploc_ros.localization.single_mode`, :mod:`~liploc_ros.localization.sequence_mode`:
  the localizer modes behind one interface
- :mod:`~liploc_ros.localization.run`: a source's frames through a localizer, in time order
- :mod:`~liploc_ros.localization.config`: ``LocalizerConfig``
- :mod:`~liploc_ros.localization.estimate`: ``PoseEstimate``, the single-frame estimate
- :mod:`~liploc_ros.localization.base_pose`: the estimate re-expressed for the vehicle
- :mod:`~liploc_ros.localization.initial_pose`: an operator's initial pose as the prior
- :mod:`~liploc_ros.localization.sequence`, :mod:`~liploc_ros.localization.sequence_config`,
  :mod:`~liploc_ros.localization.motion`, :mod:`~liploc_ros.localization.measurement`,
  :mod:`~liploc_ros.localization.particles`, :mod:`~liploc_ros.localization.filter_status`:
  the sequence filter
- :mod:`~liploc_ros.localization.fix_gate`: when a fix goes out (one pure function)
- :mod:`~liploc_ros.localization.calibration`, :mod:`~liploc_ros.localization.score_samples`,
  :mod:`~liploc_ros.localization.scores`, :mod:`~liploc_ros.localization.evidence`,
  :mod:`~liploc_ros.localization.gate_check`: what a map's scores mean (see
  docs/ARCHITECTURE.md, "Trust")

How well a run did is :mod:`liploc_ros.evaluation`.
"""
