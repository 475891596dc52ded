"""facetrec: multi-interest recommendation with pretrained language models.

The package root stays import-light (no pandas/torch) so that ``import facetrec`` and
``facetrec --help`` are instant; import stages from their modules, e.g.
``from facetrec.data import load_files``.
"""

__version__ = "0.1.0"
