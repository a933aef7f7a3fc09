"""This host's features, discovered the way NFD's nfd-worker discovers them (pure stdlib).

::

    from extender.sources.host.discover import HostPaths, discover

    result = discover(HostPaths.detect())      # /host-* mounts in the validate-image Job, else /
    result.features                             # NodeFeatures, node = this host's node name
    result.problems                             # ("pci.device: /host-sys/bus/pci/devices ...", ...)

Each module is named after the NFD source it follows (:mod:`.cpu`, :mod:`.kernel`, :mod:`.pci`,
:mod:`.usb`, :mod:`.system`, :mod:`.memory`, :mod:`.storage`, :mod:`.network`) and says in its
docstring what it reads and where it differs from nfd-worker. :mod:`.hostfs` confines every read
to the host directories of :class:`HostPaths` and bounds it.

This ``__init__`` imports nothing: the modules import each other by their full names, and a package
whose ``__init__`` imported them back would make every one of them part of an import cycle.
"""
