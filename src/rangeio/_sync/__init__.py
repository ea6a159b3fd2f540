"""The synchronous front end: HttpFile and the shell that drives the core over a transport."""
