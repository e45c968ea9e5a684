"""Engines that run a many-input `zoo run` (`--engine`): the same records either way.

- `local` (the default) is `modelzoo.core.pipeline`: worker threads on this machine, no extra packages.
- `ray` is `ray_engine`: Ray Data tasks read and preprocess, a pool of actors infers
  (`pip install 'modelzoo[ray]'`). Nothing here imports Ray until that engine runs.
"""
