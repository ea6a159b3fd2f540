"""The asynchronous front end: AsyncHttpFile, its runner, and the async transport adapters."""
