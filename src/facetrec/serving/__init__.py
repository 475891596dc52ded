"""Stage 8, serving: the HTTP service (FastAPI), its event store (SQLite) and a web page.

``facetrec serve --bundle DIR`` runs it (see docs/serving.md); :func:`create_app` builds the app
over a :class:`Service` for embedding or tests. Importing this package does not import FastAPI.
"""
