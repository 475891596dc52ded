"""``python -m facetrec`` runs the command line."""

from facetrec.cli import main

main()
