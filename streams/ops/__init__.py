"""The operators' surfaces: the ``nextoffer`` command, the HTTP server and dashboard, the OpenAPI
document, ``status``, ``explain``. Importing them reads no setting and opens no connection."""
