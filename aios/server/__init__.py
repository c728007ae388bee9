"""The HTTP side of the daemon: the Quart app, its security layer, the API and the pages."""
