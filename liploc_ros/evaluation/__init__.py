"""How well a model or a localizer did, against ground truth: metrics, reports, figures.

Above the localizer and the map (it runs and scores them), below the CLI. Import the module
you need; this package imports nothing (no torch, no matplotlib until a figure is drawn).
A new metric of a localization run is one module in :mod:`~liploc_ros.evaluation.metrics`.

- :mod:`~liploc_ros.evaluation.retrieval`: Recall@K maths (top-k search, distance
  conventions, chance level, recall curve)
- :mod:`~liploc_ros.evaluation.frame_check`: do the queries and the map share a frame?
- :mod:`~liploc_ros.evaluation.summary`: a localizer run's figures (``FrameRecord``,
  ``summarize``: Recall@K, fixes, latency)
- :mod:`~liploc_ros.evaluation.metrics`: a run's metrics for summary.json, one module each,
  found by ``run_metrics`` (a new one: drop in a module with ``figures(run)``)
- :mod:`~liploc_ros.evaluation.tracks`: a pose track's figures (fix errors, relock, the
  gate's precision / fix-ratio sweep)
- :mod:`~liploc_ros.evaluation.stream`: both localizer modes over an embedded drive
- :mod:`~liploc_ros.evaluation.demo_figures`: the demo's figures from what the node published
- :mod:`~liploc_ros.evaluation.outputs`: trajectories, frames.csv, summary.json
- :mod:`~liploc_ros.evaluation.route_figure`: route.png, the one route figure
- :mod:`~liploc_ros.evaluation.plots`: error along the drive, precision curve, recall curve
"""
