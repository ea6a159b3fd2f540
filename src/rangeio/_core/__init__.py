"""The sans-IO core: pure range arithmetic, header codecs, validation, cache and planning; no I/O.

Import what you need from its modules (``rangeio._core.ranges``, ...): this package imports
none of them, so loading one module of the core does not load the rest (the start-up cost of
``import rangeio``)."""
