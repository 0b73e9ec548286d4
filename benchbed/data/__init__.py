"""The data layer: raw files -> ``InteractionData`` -> ``Split``, cached and hashed.

Entry points: ``benchbed.data.prepare.prepare_split`` and ``load_dataset``. Modules: ``schema`` (contracts),
``catalog`` (dataset recipes; registers ``DATASETS`` and ``SPLITS``), ``sources/`` (one raw format each),
``preprocess`` (recipe steps), ``splits`` (protocols), ``enrich`` (histories, warm/cold flags), ``leakage``,
``cache`` (parquet + manifest) and ``download``. Nothing heavy is imported here.
"""
