"""The engine: file logic written once as programs of operations, run by the sync and async shells."""
