"""The ``compat-extender`` command line: :mod:`extender.cli.main` builds the parser and dispatches to
one module per command (:mod:`.server`, :mod:`.check_spec`, :mod:`.registry`, :mod:`.validate`,
:mod:`.explain`); :mod:`.report` renders what they print.

This ``__init__`` imports nothing, so importing one command's module does not import the others
(and the package is no import cycle with its modules).
"""
