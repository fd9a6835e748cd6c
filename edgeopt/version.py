"""edgeopt's version, in a module of its own: every module that records it (reports, the tune
journal, ``--version``) imports it from here, below everything, never from the package, whose
``__getattr__`` loads the API on top of everything."""

__version__ = "0.1.0"
